/**
 * SignatureVerifier: ECDSA P-256 over a SHA-256 digest the caller computed while streaming.
 * Decoding happens before the port, in portable code (modules/verify/signature.ts), so that a
 * malformed signature fails there with a precise reason and hosts implement only the math.
 *
 * Contract:
 * - `verify(publicKey, digest, signature)`: `publicKey` is an uncompressed SEC1 point already
 *   checked to lie on P-256 (65 bytes, 0x04 || X || Y); `digest` is 32 bytes; `signature` is raw
 *   r || s, 64 bytes, with 0 < r, s < n. Both low-S and high-S signatures verify (OpenSSL
 *   produces either). The digest is used as is: no hashing again.
 * - Returns true or false, never throws; anything it cannot verify is false.
 */
export interface SignatureVerifier {
  verify(publicKey: Uint8Array, digest: Uint8Array, signature: Uint8Array): boolean;
}
