/**
 * Digests over the simulator's bridge: the host's native ones (node:crypto), as the device uses
 * Moddable's `crypt` Digest in C rather than hashing in JavaScript.
 */
import type { Digest, DigestAlgorithm, DigestFactory } from "../../../modules/ports/digest.ts";
import { OtaError } from "../../../modules/errors.ts";
import { call } from "./bridge.ts";

class BridgedDigest implements Digest {
  #id: number | undefined;

  constructor(algorithm: DigestAlgorithm) {
    this.#id = call("digest.create", { algorithm }).json.id as number;
  }

  update(bytes: ArrayBuffer | ArrayBufferView): void {
    const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    call("digest.update", { id: this.#live() }, view);
  }

  finish(): Uint8Array {
    const id = this.#live();
    this.#id = undefined;
    return call("digest.finish", { id }).bytes.slice();
  }

  #live(): number {
    if (this.#id === undefined) throw new OtaError("bad-argument", "digest already finished");
    return this.#id;
  }
}

export const bridgedDigests: DigestFactory = {
  create: (algorithm) => new BridgedDigest(algorithm),
};
