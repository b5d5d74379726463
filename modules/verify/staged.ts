/**
 * The gate between a written image and a bootable one. The image's digests were computed while
 * it streamed into the slot; here they are checked against the signature (or the job's own
 * digest), the image against the bootloader's own checks, and only when all pass is the slot
 * selected. Any failure throws its OtaError and leaves boot control untouched.
 * A job's own digest proves the download is whole, not who made it: it never stands in for a
 * signature, so an image with only a digest still needs `allowUnsigned`.
 */
import type { BootControl } from "../ports/boot-control.ts";
import type { DigestFactory } from "../ports/digest.ts";
import type { Flash } from "../ports/flash.ts";
import type { ImageFormat, ImageInfo } from "../ports/image-format.ts";
import type { KeyStore } from "../ports/key-store.ts";
import type { SignatureVerifier } from "../ports/signature.ts";
import type { LogLevel } from "../ports/system.ts";
import { OtaError } from "../errors.ts";
import { decodeBase64 } from "../codec/base64.ts";
import { toHex } from "../codec/bytes.ts";
import { checkSignature, signatureFromBase64 } from "./signature.ts";
import { acceptUnsigned } from "./policy.ts";

export interface StagedImage {
  /** The slot holding the image, and its name for BootControl. */
  slot: Flash;
  slotName: string;
  /** Bytes of the image written to the slot. */
  length: number;
  /** SHA-256 of the whole image, computed as it streamed. */
  sha256: Uint8Array;
  /** The job's signature: base64 DER or raw, and the label of the key (AWS `certfile`). */
  signature?: { base64: string; keyLabel: string };
  /** A digest the job promised instead of, or as well as, a signature (Zerynth's MD5, EnOS's sign). */
  expected?: { algorithm: "md5" | "sha256"; hex: string; actual: Uint8Array };
}

export interface GateContext {
  keys: KeyStore;
  verifier: SignatureVerifier;
  boot: BootControl;
  /** The platform's image format: its check is the bootloader's. */
  format: ImageFormat;
  digests: DigestFactory;
  allowUnsigned: boolean;
  log: (level: LogLevel, message: string) => void;
}

export function verifyAndSelect(image: StagedImage, context: GateContext): ImageInfo {
  if (image.expected) {
    const want = image.expected.hex.toLowerCase();
    const got = toHex(image.expected.actual);
    if (!/^[0-9a-f]+$/.test(want) || want.length !== got.length) {
      throw new OtaError("malformed", `expected ${image.expected.algorithm} '${image.expected.hex}' is not ${got.length / 2} bytes of hex`);
    }
    if (want !== got) throw new OtaError("digest-mismatch", `image ${image.expected.algorithm} is ${got}, the job promised ${want}`);
  }
  if (image.signature) {
    const key = context.keys.publicKey(image.signature.keyLabel);
    if (!key) throw new OtaError("key-invalid", `no code-signing key labelled '${image.signature.keyLabel}' on this device`);
    checkSignature(context.verifier, key, image.sha256, signatureFromBase64(image.signature.base64));
  } else {
    acceptUnsigned(context.allowUnsigned, context.log, `the image for ${image.slotName}`);
  }
  const verified = context.format.verify(image.slot, image.length, context.digests);
  context.boot.select(image.slotName, { length: image.length, signature: image.signature ? decodeBase64(image.signature.base64) : undefined });
  return verified;
}
