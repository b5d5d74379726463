/**
 * Runs inside XS. What the test's device runner (test/moddable/device.ts) tells the firmware
 * about the board it boots on: the partition table and the slot the bootloader started (what
 * ESP-IDF knows natively), and the provisioning an app would find in its manifest config.
 */
import { call } from "../../../hosts/sim/xs/bridge.ts";
import type { Esp32TestIdentity } from "../device.ts";

let identity: Esp32TestIdentity | undefined;

export function boardIdentity(): Esp32TestIdentity {
  identity ??= call("device.identity").json.identity as Esp32TestIdentity;
  return identity;
}
