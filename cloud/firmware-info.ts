/**
 * What the local cloud can tell of a firmware file before it offers it: the image format, by its
 * magic, and the version its header declares. A raw MCU binary (an Mbed app for an @AFRTOS
 * bootloader) declares none: the job must name it (`version`), as an AWS OTA update names the
 * file but not its version.
 */
import { IMAGE_MAGIC, parseImagePrefix } from "../modules/esp-idf/image.ts";
import { W800_HEADER_SIZE, W800_MAGIC, decodeHeader } from "../modules/w800/header.ts";

export interface FirmwareInfo {
  format: "esp-idf" | "w800" | "raw";
  version?: string;
}

/** Throws the header's own reason when a file starts like an image of a known format but is not one. */
export function firmwareInfo(bytes: Uint8Array): FirmwareInfo {
  if (bytes[0] === IMAGE_MAGIC) return { format: "esp-idf", version: parseImagePrefix(bytes.subarray(0, 288)).desc.version };
  if (bytes.length >= W800_HEADER_SIZE && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) === W800_MAGIC) {
    return { format: "w800", version: decodeHeader(bytes.subarray(0, W800_HEADER_SIZE)).version };
  }
  return { format: "raw" };
}
