/*
 * The one thing hosts/esp32 needs from ESP-IDF that no Moddable module offers: the label of the
 * app slot the bootloader started. Moddable's flash modules can open that slot as "running" but
 * never say which one it is, and the agent must know it to write otadata for the other one.
 * Implemented in xs-ota-native.c; declared for TypeScript in hosts/esp32/moddable-extra.d.ts.
 */
export function runningPartition() @ "xs_xsota_running_partition";
