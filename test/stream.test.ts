import { contract } from "./contract/vitest.ts";
import streams from "./contract/stream.contract.ts";

contract(streams, new URL("./contract/stream.contract.ts", import.meta.url));
