import type { ImageFormat } from "../../modules/ports/image-format.ts";
import { packImage } from "../../modules/esp-idf/image.ts";
import { nodeDigests } from "../../hosts/sim/node-digest.ts";

/** An ESP app image of about `bytes` bytes. */
export function packed(version: string, bytes: number): Uint8Array {
  return packImage({ version, payload: new Uint8Array(bytes).fill(0x41), sha256: () => nodeDigests.create("sha256") });
}

/** A format with no header, as raw binaries are. */
export const afrStagingFormatForTest: ImageFormat = { name: "raw", prefixSize: 0, parsePrefix: () => ({}), verify: () => ({}) };
