import type { Flash } from "./flash.ts";

/**
 * Partitions: the named regions of the device's flash, each opened as a Flash whose offset 0 is
 * the partition's first byte and whose bounds are the partition's.
 *
 * Contract:
 * - `open(name)` opens a partition by its partition-table label (`otadata`, `ota_0`, `ota_1`,
 *   `nvs`...). An unknown name: OtaError "partition-unknown". Opening twice gives two views of
 *   the same bytes.
 * - `running()` names the app slot the bootloader started (what ESP-IDF's
 *   `esp_ota_get_running_partition()` returns), e.g. "ota_0".
 * - `appSlots()` lists the OTA app slots in slot order ("ota_0", "ota_1", ...): the order the
 *   bootloader maps an otadata sequence number onto, `(seq - 1) % appSlots().length`.
 */
export interface Partitions {
  open(name: string): Flash;
  running(): string;
  appSlots(): string[];
}
