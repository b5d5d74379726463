/**
 * Stand-in for Moddable's "crypt" Digest (modules/crypt/digest), over @noble/hashes: hash names
 * in capitals (else "crypt: unsupported digest"), `write` of a String (its UTF-8) or a buffer,
 * `close()` returning the digest as an ArrayBuffer and ending the object.
 */
import { sha224, sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { md5, sha1 } from "@noble/hashes/legacy.js";
import { utf8Encode } from "../../../modules/codec/utf8.ts";

interface Hash {
  update(bytes: Uint8Array): unknown;
  digest(): Uint8Array;
}

const HASHES: Record<string, () => Hash> = {
  MD5: () => md5.create(),
  SHA1: () => sha1.create(),
  SHA224: () => sha224.create(),
  SHA256: () => sha256.create(),
  SHA384: () => sha384.create(),
  SHA512: () => sha512.create(),
};

export class Digest {
  readonly #name: string;
  #hash: Hash | undefined;

  constructor(type: string) {
    if (!Object.hasOwn(HASHES, type)) throw new Error("crypt: unsupported digest");
    this.#name = type;
    this.#hash = HASHES[type]();
  }

  write(data: string | ArrayBuffer | ArrayBufferView): void {
    if (!this.#hash) throw new Error("crypt: can't call digest write after close");
    const bytes = typeof data === "string" ? utf8Encode(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.#hash.update(bytes);
  }

  close(): ArrayBuffer {
    if (!this.#hash) throw new Error("crypt: digest closed");
    const out = this.#hash.digest();
    this.#hash = undefined;
    return out.slice().buffer;
  }

  reset(): void {
    this.#hash = HASHES[this.#name]();
  }
}

export default { Digest };
