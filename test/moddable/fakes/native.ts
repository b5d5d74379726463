/** Stand-in for "xs-ota/esp32/native" (hosts/esp32/native): esp_ota_get_running_partition()'s label. */
import { boardIdentity } from "./identity.ts";

export function runningPartition(): string {
  return boardIdentity().running;
}
