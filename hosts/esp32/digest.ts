/**
 * Digests in C through Moddable's `crypt` Digest (documentation/crypt/crypt.md), which hashes
 * far faster on the chip than JavaScript. CRC-32 is not among its hashes, so it stays on the
 * portable implementation. hasherDigest gives both the port's contract (nothing after finish).
 */
import { Digest as CryptDigest } from "crypt";
import type { Digest, DigestAlgorithm, DigestFactory } from "xs-ota/ports/digest";
import { exactBuffer } from "./buffers.ts";
import { crc32Hasher, hasherDigest, unknownAlgorithm, type Hasher } from "xs-ota/verify/noble-digest";

// The SDK's typings name the type of hash names DigestType and do not export it: take it from
// the constructor, which every version of the typings declares.
type DigestName = ConstructorParameters<typeof CryptDigest>[0];

const NAMES: Record<Exclude<DigestAlgorithm, "crc32">, DigestName> = { sha256: "SHA256", sha1: "SHA1", md5: "MD5" };

function cryptHasher(name: DigestName): Hasher {
  const digest = new CryptDigest(name);
  return {
    update: (bytes: Uint8Array) => digest.write(exactBuffer(bytes)),
    digest: () => new Uint8Array(digest.close()),
  };
}

export const esp32Digests: DigestFactory = {
  create(algorithm: DigestAlgorithm): Digest {
    if (algorithm === "crc32") return hasherDigest(crc32Hasher());
    if (!Object.hasOwn(NAMES, algorithm)) throw unknownAlgorithm(algorithm);
    return hasherDigest(cryptHasher(NAMES[algorithm]));
  },
};
