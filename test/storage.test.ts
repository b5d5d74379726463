import { contract } from "./contract/vitest.ts";
import flash from "./contract/flash.contract.ts";

contract(flash, new URL("./contract/flash.contract.ts", import.meta.url));
import otadata from "./contract/otadata.contract.ts";

contract(otadata, new URL("./contract/otadata.contract.ts", import.meta.url));
