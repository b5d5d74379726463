/**
 * The pure-JS Digest fallback, over @noble/hashes. Hosts with native digests inject those
 * instead; this one serves where none exists (and the XS test engine).
 *
 * `hasherDigest`, `unknownAlgorithm` and `crc32Hasher` give any host's hasher the port's
 * contract (views of any kind, nothing after finish, the error for an algorithm it lacks, CRC-32
 * as 4 big-endian bytes), so hosts need not repeat it.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { md5, sha1 } from "@noble/hashes/legacy.js";
import type { Digest, DigestAlgorithm, DigestFactory } from "../ports/digest.ts";
import { crc32 } from "../codec/crc32.ts";
import { OtaError } from "../errors.ts";
import { toBytes } from "../storage/flash-checks.ts";

/** A hash as libraries have it: bytes in, one digest out. */
export interface Hasher {
  update(bytes: Uint8Array): unknown;
  digest(): Uint8Array;
}

class GuardedDigest implements Digest {
  #hasher: Hasher | undefined;
  constructor(hasher: Hasher) {
    this.#hasher = hasher;
  }
  update(bytes: ArrayBuffer | ArrayBufferView): void {
    this.#live().update(toBytes(bytes));
  }
  finish(): Uint8Array {
    const hasher = this.#live();
    this.#hasher = undefined;
    return hasher.digest();
  }
  #live(): Hasher {
    if (!this.#hasher) throw new OtaError("bad-argument", "digest already finished");
    return this.#hasher;
  }
}

export function hasherDigest(hasher: Hasher): Digest {
  return new GuardedDigest(hasher);
}

export function unknownAlgorithm(algorithm: unknown): OtaError {
  return new OtaError("bad-argument", `unknown digest algorithm '${String(algorithm)}'`);
}

/**
 * CRC-32 as a Hasher over any function that continues like zlib's crc32(data, previous); the port
 * wants its value as 4 bytes, big-endian.
 */
export function crc32Hasher(continueCrc: (bytes: Uint8Array, previous: number) => number = crc32): Hasher {
  let crc = 0;
  return {
    update: (bytes) => (crc = continueCrc(bytes, crc)),
    digest: () => {
      const out = new Uint8Array(4);
      new DataView(out.buffer).setUint32(0, crc);
      return out;
    },
  };
}

const hashers: Record<DigestAlgorithm, () => Hasher> = {
  sha256: () => sha256.create(),
  sha1: () => sha1.create(),
  md5: () => md5.create(),
  crc32: () => crc32Hasher(),
};

export const nobleDigests: DigestFactory = Object.freeze({
  create(algorithm: DigestAlgorithm): Digest {
    if (!Object.hasOwn(hashers, algorithm)) throw unknownAlgorithm(algorithm);
    return hasherDigest(hashers[algorithm]());
  },
});
