/** Digests for the desktop host: node:crypto's native hashes, zlib's crc32 where Node has it. */
import { createHash, type Hash } from "node:crypto";
import type { Digest, DigestAlgorithm, DigestFactory } from "../../modules/ports/digest.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";

class NodeDigest implements Digest {
  readonly #hash: Hash;
  constructor(algorithm: string) {
    this.#hash = createHash(algorithm);
  }
  update(bytes: ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  finish(): Uint8Array {
    return new Uint8Array(this.#hash.digest());
  }
}

export const nodeDigests: DigestFactory = {
  create(algorithm: DigestAlgorithm): Digest {
    return algorithm === "crc32" ? nobleDigests.create("crc32") : new NodeDigest(algorithm);
  },
};
