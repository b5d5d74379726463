/** The device-engine contract (test/contract/device-engine.contract.ts) on Node and on the device-faithful XS. */
import { contract } from "./contract/vitest.ts";
import deviceEngine from "./contract/device-engine.contract.ts";

contract(deviceEngine, new URL("./contract/device-engine.contract.ts", import.meta.url));
