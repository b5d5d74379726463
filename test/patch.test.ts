import { contract } from "./contract/vitest.ts";
import patch from "./contract/patch.contract.ts";

contract(patch, new URL("./contract/patch.contract.ts", import.meta.url));
