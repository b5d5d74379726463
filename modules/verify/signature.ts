/**
 * ECDSA P-256 signatures as AWS OTA sends them (`sig-sha256-ecdsa`: base64 of DER) or as raw
 * r || s, turned into the one form the SignatureVerifier port takes: 64 bytes r || s.
 *
 * Decoding runs here, in portable code, rather than in each host's verifier, so that a bad
 * signature gets the same precise reason on every host, and a host only has to verify.
 * DER is strict (X.690 DER, as OpenSSL and AWS Signer write it): positive minimal INTEGERs,
 * nothing trailing. Both low-S and high-S are well-formed: OpenSSL signs either way.
 */
import { OtaError, isOtaError } from "../errors.ts";
import type { SignatureVerifier } from "../ports/signature.ts";
import { decodeBase64 } from "../codec/base64.ts";
import { TAG_INTEGER, TAG_SEQUENCE, expectEnd, expectTlv, readWhole, unsignedInteger, type Tlv } from "../codec/der.ts";

/** The order n of the P-256 group, big-endian: r and s must lie in [1, n - 1]. */
const N = new Uint8Array([
  0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
  0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
]);

function malformed(message: string): never {
  throw new OtaError("signature-malformed", message);
}

/**
 * DER (SEQUENCE of two INTEGERs) or raw 64-byte r || s -> raw r || s (a new array).
 * Bytes starting 0x30 are read as DER first; if they are not DER but are 64 bytes long, they
 * are a raw signature whose r happens to start with 0x30 (1 in 256 raw signatures do).
 */
export function decodeSignature(bytes: Uint8Array): Uint8Array {
  let raw: Uint8Array | undefined;
  if (bytes.length > 0 && bytes[0] === TAG_SEQUENCE) {
    try {
      raw = fromDer(bytes);
    } catch (e) {
      if (bytes.length !== 64) {
        if (isOtaError(e)) malformed(e.message);
        throw e;
      }
    }
  }
  if (raw === undefined) {
    if (bytes.length !== 64) malformed(`signature is not DER (first byte is not SEQUENCE 0x30), and raw signatures are 64 bytes, got ${bytes.length}`);
    raw = bytes.slice();
  }
  checkScalar(raw.subarray(0, 32), "r");
  checkScalar(raw.subarray(32), "s");
  return raw;
}

/** Base64 (surrounding whitespace allowed) of a DER or raw signature -> raw r || s. */
export function signatureFromBase64(text: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(text.trim());
  } catch (e) {
    if (isOtaError(e)) malformed(`signature ${e.message}`);
    throw e;
  }
  return decodeSignature(bytes);
}

/**
 * Verifies `signature` (DER or raw) over a SHA-256 `digest` with an uncompressed P-256
 * `publicKey` through the host's verifier; returns normally only when it matches.
 */
export function checkSignature(verifier: SignatureVerifier, publicKey: Uint8Array, digest: Uint8Array, signature: Uint8Array): void {
  const raw = decodeSignature(signature);
  if (digest.length !== 32) throw new OtaError("bad-argument", `digest must be 32 bytes (SHA-256), got ${digest.length}`);
  if (publicKey.length !== 65 || publicKey[0] !== 0x04) {
    throw new OtaError("bad-argument", `public key must be an uncompressed P-256 point (65 bytes starting 0x04), got ${publicKey.length} bytes`);
  }
  let matches: boolean;
  try {
    matches = verifier.verify(publicKey, digest, raw);
  } catch (e) {
    // The port promises false rather than an exception; a host that throws anyway must not
    // crash the agent, and an image it could not verify is not verified.
    if (isOtaError(e)) throw e;
    throw new OtaError("signature-invalid", `signature verifier failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!matches) throw new OtaError("signature-invalid", "signature does not match the image and key");
}

function fromDer(der: Uint8Array): Uint8Array {
  const seq = readWhole(der, TAG_SEQUENCE, "signature SEQUENCE");
  const r = expectTlv(der, seq.valueStart, seq.end, TAG_INTEGER, "INTEGER r");
  const s = expectTlv(der, r.end, seq.end, TAG_INTEGER, "INTEGER s");
  expectEnd(s.end, seq.end, "INTEGER s (a signature has two INTEGERs)");
  const raw = new Uint8Array(64);
  place(der, r, raw, 0, "r");
  place(der, s, raw, 32, "s");
  return raw;
}

/** Left-pads INTEGER `name`'s value (at most 32 bytes after its sign byte) into raw[at..at+32). */
function place(der: Uint8Array, tlv: Tlv, raw: Uint8Array, at: number, name: string): void {
  // A 32-byte scalar with its top bit set needs a 0x00 sign byte: 33 is the most DER can need.
  if (tlv.length > 33) malformed(`DER: INTEGER ${name} at offset ${tlv.start} is ${tlv.length} bytes long; at most 33`);
  const value = unsignedInteger(der, tlv, `INTEGER ${name}`);
  if (value.length > 32) malformed(`DER: INTEGER ${name} at offset ${tlv.start} does not fit in 32 bytes`);
  raw.set(value, at + 32 - value.length);
}

/** 1 <= v < n, for a 32-byte big-endian v. */
function checkScalar(v: Uint8Array, name: string): void {
  let zero = true;
  for (let i = 0; i < 32; i++) if (v[i] !== 0) zero = false;
  if (zero) malformed(`signature ${name} is zero`);
  for (let i = 0; i < 32; i++) {
    if (v[i] < N[i]) return;
    if (v[i] > N[i]) break;
  }
  malformed(`signature ${name} is not below the P-256 group order n`);
}
