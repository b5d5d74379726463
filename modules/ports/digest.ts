/**
 * Digest: a streaming hash. Hosts inject native ones (Moddable's `crypt` Digest in C on the
 * device, node:crypto on the desktop); @noble/hashes is the pure-JS fallback.
 *
 * Contract:
 * - `update(bytes)` may be called any number of times with blocks of any size, including 0.
 * - `finish()` returns the digest (32 bytes for sha256, 20 sha1, 16 md5, 4 crc32 big-endian)
 *   and ends the object: any later call throws.
 * - Algorithms a host may not have: `create` throws OtaError "bad-argument".
 */
export type DigestAlgorithm = "sha256" | "sha1" | "md5" | "crc32";

export interface Digest {
  update(bytes: ArrayBuffer | ArrayBufferView): void;
  finish(): Uint8Array;
}

export interface DigestFactory {
  create(algorithm: DigestAlgorithm): Digest;
}
