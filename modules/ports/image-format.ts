import type { DigestFactory } from "./digest.ts";
import type { Flash } from "./flash.ts";

/**
 * ImageFormat: what the agent may know about an image before and after it is written, for one
 * platform's image layout (ESP-IDF app images, W800 images, raw binaries behind an @AFRTOS
 * descriptor). The agent and the transfers name no format constant; they ask this port.
 *
 * Contract:
 * - `prefixSize` is how many bytes from the image's start `parsePrefix` needs. The transfers hold
 *   those bytes back, unwritten, until `parsePrefix` and the agent's policy (newer version,
 *   security version not below the floor) accept them. 0: the format carries nothing the device
 *   can read before the image runs (a raw binary); its version is checked after the reboot.
 * - `parsePrefix(prefix)` gets exactly `prefixSize` bytes (fewer only when the whole image is
 *   shorter) and returns what the header says, or throws OtaError "image-invalid" with the reason.
 * - `verify(slot, length, digests)` checks the image written to the start of `slot`, `length`
 *   bytes long, the way the platform's bootloader will check it before it installs or starts
 *   it (header checksums, segment bounds, appended hashes). Streams from flash in bounded reads;
 *   throws "image-invalid" with the reason. It never writes.
 */
export interface ImageInfo {
  /** The version the image declares, when its format declares one. */
  version?: string;
  /** The anti-rollback counter, when the format has one (ESP-IDF `secure_version`). */
  secureVersion?: number;
}

export interface ImageFormat {
  readonly name: string;
  readonly prefixSize: number;
  parsePrefix(prefix: Uint8Array): ImageInfo;
  verify(slot: Flash, length: number, digests: DigestFactory): ImageInfo;
}
