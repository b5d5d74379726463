/** Digests for the desktop host: node:crypto's native hashes, and zlib's native crc32. */
import { createHash } from "node:crypto";
import * as zlib from "node:zlib";
import type { Digest, DigestAlgorithm, DigestFactory } from "../../modules/ports/digest.ts";
import { crc32Hasher, hasherDigest, unknownAlgorithm, type Hasher } from "../../modules/verify/noble-digest.ts";
import { crc32 } from "../../modules/codec/crc32.ts";

/**
 * zlib.crc32 came in Node 20.15 (package.json allows >= 20.6); it continues like crc32(data,
 * previous), except that a view over a zero-length ArrayBuffer reaches zlib as a NULL pointer,
 * and zlib's crc32(crc, NULL, 0) answers 0, the initial value, dropping the running CRC (Node
 * 20.20). Empty blocks change no CRC, so they are skipped.
 */
const zlibCrc32 = typeof zlib.crc32 === "function" ? zlib.crc32 : crc32;
const nativeCrc32 = (bytes: Uint8Array, previous: number) => (bytes.length === 0 ? previous : zlibCrc32(bytes, previous));

function cryptoHasher(name: "sha256" | "sha1" | "md5"): Hasher {
  const hash = createHash(name);
  return {
    update: (bytes) => hash.update(bytes),
    // A copy into a plain Uint8Array: node:crypto's Buffer may be a view into a shared pool.
    digest: () => new Uint8Array(hash.digest()),
  };
}

const hashers: Record<DigestAlgorithm, () => Hasher> = {
  sha256: () => cryptoHasher("sha256"),
  sha1: () => cryptoHasher("sha1"),
  md5: () => cryptoHasher("md5"),
  crc32: () => crc32Hasher(nativeCrc32),
};

export const nodeDigests: DigestFactory = {
  create(algorithm: DigestAlgorithm): Digest {
    if (!Object.hasOwn(hashers, algorithm)) throw unknownAlgorithm(algorithm);
    return hasherDigest(hashers[algorithm]());
  },
};
