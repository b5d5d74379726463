/**
 * A raw Mbed application binary (what AWS OTA ships to the NuMaker-IoT-M487) as an ImageFormat.
 * It has no header: nothing declares a version the device could read before the image runs, so
 * prefixSize is 0 and AWS's agent checks the version after the reboot (against `updatedBy`).
 * The Cloner checks nothing of the image itself either (only the descriptor and trailer), so
 * verify refuses only what can never be an image: nothing, a blank start, or more than the slot.
 */
import type { ImageFormat, ImageInfo } from "../ports/image-format.ts";
import { OtaError } from "../errors.ts";

const BLOCK = 4096;

const format: ImageFormat = {
  name: "afr-staging",
  prefixSize: 0,
  parsePrefix(): ImageInfo {
    return {};
  },
  verify(slot, length): ImageInfo {
    if (!Number.isInteger(length) || length <= 0) throw new OtaError("image-invalid", `an image of ${length} bytes is empty`);
    const size = slot.status().size;
    if (length > size) throw new OtaError("image-invalid", `the image is ${length} bytes, longer than its ${size}-byte slot`);
    // One block decides it: an erased start means the write never happened (a vector table's
    // initial stack pointer is never 0xFFFFFFFF), and the rest of a raw binary has no rules.
    const first = new Uint8Array(slot.read(Math.min(BLOCK, length), 0));
    if (isBlank(first)) throw new OtaError("image-invalid", `the image's first ${first.length} bytes are blank (0xFF): nothing was written`);
    return {};
  },
};

function isBlank(bytes: Uint8Array): boolean {
  // Words where they fit: a quarter of the steps, and XS reads a Uint32Array as fast as bytes.
  const words = bytes.length >> 2;
  const view = new Uint32Array(bytes.buffer, bytes.byteOffset, words);
  for (let i = 0; i < words; i++) if (view[i] !== 0xffffffff) return false;
  for (let i = words << 2; i < bytes.length; i++) if (bytes[i] !== 0xff) return false;
  return true;
}

export const afrStagingFormat: ImageFormat = Object.freeze(format);
