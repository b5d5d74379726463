/**
 * The W800 image as an ImageFormat: the version from the 64-byte header, and the check the SDK
 * makes of a staged image (wm_ota_ops_check_header, then org_checksum as wm_ota_ops_end compares
 * it). `checkW800Image` is the same check for an image wherever it lies, so the simulated
 * second-stage boot checks the run image with it too.
 */
import type { Flash } from "../ports/flash.ts";
import type { DigestFactory } from "../ports/digest.ts";
import type { ImageFormat, ImageInfo } from "../ports/image-format.ts";
import { OtaError } from "../errors.ts";
import { W800_FLASH_BASE, W800_HEADER_SIZE, W800_RUN_OFFSET, checkHeader, decodeAttributes, sdkCrcOfDigest, type HeaderPlace, type W800Header, type W800Layout } from "./header.ts";

const READ = 4096;

/**
 * Checks the image whose header is at offset 0 of `flash`: the header for `place`, and the CRC
 * over its body (right after the header when staged, at +0x400 when installed), streamed in
 * 4 KB reads. Throws "image-invalid" with the reason.
 */
export function checkW800Image(flash: Flash, layout: W800Layout, place: HeaderPlace, digests: DigestFactory): W800Header {
  const size = flash.status().size;
  if (size < W800_HEADER_SIZE) throw new OtaError("image-invalid", `the partition is ${size} bytes, smaller than a W800 header`);
  const header = checkHeader(new Uint8Array(flash.read(W800_HEADER_SIZE, 0)), layout, place);
  const start = place === "staged" ? W800_HEADER_SIZE : W800_RUN_OFFSET;
  if (start + header.imgLen > size) throw new OtaError("image-invalid", `img_len ${header.imgLen} from ${start} runs past the partition's ${size} bytes`);
  const crc = digests.create("crc32");
  for (let at = 0; at < header.imgLen; at += READ) crc.update(flash.read(Math.min(READ, header.imgLen - at), start + at));
  const sdk = sdkCrcOfDigest(crc.finish());
  if (sdk !== header.orgChecksum) {
    throw new OtaError("image-invalid", `W800 image: org_checksum 0x${header.orgChecksum.toString(16)} does not match the body's CRC 0x${sdk.toString(16)}`);
  }
  return header;
}

/**
 * xs-ota's model of the second-stage boot (closed source) installs every image into app, so a
 * staged image must name app as where it runs: an XZ image as the SDK's OTA example shows it
 * (img_addr app + 0x400, img_header_addr app), an uncompressed one likewise.
 */
function checkRunsFromApp(header: W800Header, layout: W800Layout): void {
  const app = W800_FLASH_BASE + layout.app.offset;
  if (header.imgHeaderAddr !== app || header.imgAddr !== app + W800_RUN_OFFSET) {
    throw new OtaError("image-invalid", "W800 image: built to run from app_ota; the boot installs images into app (img_header_addr and img_addr must name app)");
  }
}

export function w800Format(layout: W800Layout): ImageFormat {
  const format: ImageFormat = {
    name: "w800",
    prefixSize: W800_HEADER_SIZE,
    parsePrefix(prefix: Uint8Array): ImageInfo {
      const header = checkHeader(prefix, layout, "staged");
      checkRunsFromApp(header, layout);
      return { version: header.version };
    },
    verify(slot: Flash, length: number, digests: DigestFactory): ImageInfo {
      const header = checkW800Image(slot, layout, "staged", digests);
      checkRunsFromApp(header, layout);
      if (W800_HEADER_SIZE + header.imgLen > length) {
        throw new OtaError("image-invalid", `W800 image: header and body take ${W800_HEADER_SIZE + header.imgLen} bytes, more than the ${length} bytes written`);
      }
      return { version: header.version };
    },
  };
  return Object.freeze(format);
}

/** Whether a staged header says its body is an XZ stream. */
export function isCompressed(header: W800Header): boolean {
  return decodeAttributes(header.imgAttr).compressType === 1;
}
