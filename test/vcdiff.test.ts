import { contract } from "./contract/vitest.ts";
import vcdiff from "./contract/vcdiff.contract.ts";

contract(vcdiff, new URL("./contract/vcdiff.contract.ts", import.meta.url));
