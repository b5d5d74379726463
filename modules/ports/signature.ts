/**
 * SignatureVerifier: ECDSA P-256 over a SHA-256 digest the caller computed while streaming.
 *
 * Contract:
 * - `verify(publicKey, digest, signature)`: `publicKey` is an uncompressed SEC1 point (65 bytes,
 *   0x04 || X || Y); `digest` is 32 bytes; `signature` is DER (SEQUENCE of two INTEGERs) or raw
 *   64-byte r || s. Both low-S and high-S signatures verify (OpenSSL produces either).
 * - Returns true or false for a well-formed signature; a malformed one (bad DER, wrong lengths,
 *   trailing bytes) is false too, never an exception.
 */
export interface SignatureVerifier {
  verify(publicKey: Uint8Array, digest: Uint8Array, signature: Uint8Array): boolean;
}
