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
 */
import { p256 } from "@noble/curves/nist.js";
import type { SignatureVerifier } from "../ports/signature.ts";

export const nobleVerifier: SignatureVerifier = {
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
};
