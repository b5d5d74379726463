import { contract } from "./contract/vitest.ts";
import s from "./contract/signature.contract.ts";

contract(s, new URL("./contract/signature.contract.ts", import.meta.url));
import staged from "./contract/staged.contract.ts";

contract(staged, new URL("./contract/staged.contract.ts", import.meta.url));
