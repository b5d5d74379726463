/** Where the device-faithful XS engine is built (hosts/sim/engine/build.ts), outside the repo's sources. */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const DEVICE_ENGINE_DIR = fileURLToPath(new URL("../../../node_modules/.xs-ota/device-xs/", import.meta.url));

export function deviceWorkerPath(): string {
  return join(DEVICE_ENGINE_DIR, "build/bin/lin/release/xsnap-device");
}
