/**
 * The ESP-IDF app image as an ImageFormat: version and secure_version from the app descriptor in
 * the first 288 bytes, and the bootloader's own structural check (modules/esp-idf/image.ts).
 */
import type { ImageFormat, ImageInfo } from "../ports/image-format.ts";
import { OtaError } from "../errors.ts";
import { IMAGE_PREFIX_SIZE, parseImagePrefix, verifyImage } from "./image.ts";

const format: ImageFormat = {
  name: "esp-idf",
  prefixSize: IMAGE_PREFIX_SIZE,
  parsePrefix(prefix: Uint8Array): ImageInfo {
    const { desc } = parseImagePrefix(prefix);
    return { version: desc.version, secureVersion: desc.secureVersion };
  },
  verify(slot, length, digests): ImageInfo {
    const v = verifyImage(slot, () => digests.create("sha256"));
    if (v.length > length) throw new OtaError("image-invalid", `the image's segments and hash take ${v.length} bytes, more than the ${length} bytes written`);
    return { version: v.desc.version, secureVersion: v.desc.secureVersion };
  },
};

export const espIdfFormat: ImageFormat = Object.freeze(format);
