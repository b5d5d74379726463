/**
 * The pure-JS SignatureVerifier, over @noble/curves. Hosts with native ECDSA (mbedTLS on the
 * ESP32) inject theirs; this one serves where none exists, and on the XS test engine.
 *
 * It takes what the port takes after decodeSignature(): raw 64-byte r || s over a SHA-256
 * digest. noble v2's defaults are wrong for that, so both are overridden:
 * - prehash: false, because the message passed is already the digest (the default would hash
 *   it again);
 * - lowS: false, because OpenSSL and AWS Signer produce high-S signatures about half the time
 *   and ECDSA accepts them (the default refuses them, a Bitcoin malleability rule).
 *
 * The curve is built here from its parameters rather than imported from @noble/curves/nist.js:
 * that module also builds hash-to-curve, OPRF and FROST helpers for every NIST curve when it is
 * imported, which needs TextEncoder (a Moddable app has none) and costs what P-256 verification
 * never uses.
 */
import { ecdsa, weierstrass } from "@noble/curves/abstract/weierstrass.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { SignatureVerifier } from "../ports/signature.ts";

/** NIST P-256 (secp256r1), FIPS 186-5 / SEC 2 section 2.4.2, with SHA-256. */
export const p256 = ecdsa(
  weierstrass({
    p: BigInt("0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff"),
    n: BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"),
    h: BigInt(1),
    a: BigInt("0xffffffff00000001000000000000000000000000fffffffffffffffffffffffc"),
    b: BigInt("0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"),
    Gx: BigInt("0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
    Gy: BigInt("0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"),
  }),
  sha256,
);

export const nobleVerifier: SignatureVerifier = Object.freeze({
  verify(publicKey: Uint8Array, digest: Uint8Array, signature: Uint8Array): boolean {
    if (signature.length !== 64 || digest.length !== 32) return false;
    try {
      return p256.verify(signature, digest, publicKey, { prehash: false, lowS: false, format: "compact" });
    } catch {
      // noble throws on inputs it refuses to parse (key length, r or s out of range): for the
      // port these are signatures that do not verify.
      return false;
    }
  },
});
