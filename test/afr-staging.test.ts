import { contract } from "./contract/vitest.ts";
import afr from "./contract/afr-staging.contract.ts";

contract(afr, new URL("./contract/afr-staging.contract.ts", import.meta.url));
