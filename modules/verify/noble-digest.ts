/**
 * The pure-JS Digest fallback, over @noble/hashes. Hosts with native digests inject those
 * instead; this one serves where none exists (and the XS test engine).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { md5, sha1 } from "@noble/hashes/legacy.js";
import type { Digest, DigestAlgorithm, DigestFactory } from "../ports/digest.ts";
import { crc32 } from "../codec/crc32.ts";
import { toBytes } from "../storage/flash-checks.ts";

class Crc32Digest implements Digest {
  #crc = 0;
  update(bytes: ArrayBuffer | ArrayBufferView): void {
    this.#crc = crc32(toBytes(bytes), this.#crc);
  }
  finish(): Uint8Array {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, this.#crc);
    return out;
  }
}

class NobleDigest implements Digest {
  readonly #hash: { update(b: Uint8Array): unknown; digest(): Uint8Array };
  constructor(hash: { update(b: Uint8Array): unknown; digest(): Uint8Array }) {
    this.#hash = hash;
  }
  update(bytes: ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(toBytes(bytes));
  }
  finish(): Uint8Array {
    return this.#hash.digest();
  }
}

export const nobleDigests: DigestFactory = {
  create(algorithm: DigestAlgorithm): Digest {
    switch (algorithm) {
      case "sha256":
        return new NobleDigest(sha256.create());
      case "sha1":
        return new NobleDigest(sha1.create());
      case "md5":
        return new NobleDigest(md5.create());
      case "crc32":
        return new Crc32Digest();
    }
  },
};
