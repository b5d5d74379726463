import { contract } from "./contract/vitest.ts";
import s from "./contract/signature.contract.ts";

contract(s, new URL("./contract/signature.contract.ts", import.meta.url));
