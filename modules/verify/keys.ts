/**
 * Code-signing public keys: the P-256 point out of a SubjectPublicKeyInfo (PEM "PUBLIC KEY",
 * RFC 5480) or out of an X.509 certificate (PEM "CERTIFICATE", as AWS's `certfile` holds).
 *
 * A certificate is used only as a container for its key: its own signature, issuer chain and
 * validity dates are not checked, because the key store on the device is the trust anchor (it
 * was provisioned) and a device may not know the time when it verifies an image.
 *
 * Compressed points (33 bytes, 0x02/0x03) are accepted and decompressed: RFC 5480 allows them,
 * the cost is one square root, and refusing a key that names a valid point helps nobody.
 *
 * Codes: broken DER or PEM is "malformed"; parseable input that is not a usable P-256 key is
 * "key-invalid" with what it is instead.
 */
import { p256 } from "./noble-signature.ts";
import { OtaError } from "../errors.ts";
import { parsePem } from "../codec/pem.ts";
import {
  TAG_INTEGER,
  TAG_OID,
  TAG_SEQUENCE,
  bitStringBytes,
  expectEnd,
  expectTlv,
  readOid,
  readTlv,
  readWhole,
  tagName,
} from "../codec/der.ts";

const EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const PRIME256V1 = "1.2.840.10045.3.1.7";

/** Names for the algorithms and curves people meet, so a refusal says what the key is. */
const OID_NAMES: Record<string, string> = Object.freeze({
  "1.2.840.10045.2.1": "id-ecPublicKey",
  "1.2.840.113549.1.1.1": "rsaEncryption",
  "1.2.840.113549.1.1.10": "RSASSA-PSS",
  "1.2.840.10040.4.1": "dsa",
  "1.3.101.110": "X25519",
  "1.3.101.111": "X448",
  "1.3.101.112": "Ed25519",
  "1.3.101.113": "Ed448",
  "1.3.132.1.12": "id-ecDH",
  "1.2.840.10045.3.1.1": "prime192v1",
  "1.2.840.10045.3.1.7": "prime256v1",
  "1.3.132.0.10": "secp256k1",
  "1.3.132.0.33": "secp224r1",
  "1.3.132.0.34": "secp384r1",
  "1.3.132.0.35": "secp521r1",
  "1.3.36.3.3.2.8.1.1.7": "brainpoolP256r1",
});

function named(oid: string): string {
  const name = OID_NAMES[oid];
  return name === undefined ? oid : `${name} (${oid})`;
}

function invalid(message: string): never {
  throw new OtaError("key-invalid", message);
}

/**
 * Checks an encoded P-256 point and returns it uncompressed (65 bytes, 0x04 || X || Y).
 * `what` starts messages ("public key", "certificate key").
 */
export function publicKeyFromPoint(point: Uint8Array, what = "public key"): Uint8Array {
  const head = point.length > 0 ? point[0] : -1;
  const uncompressed = point.length === 65 && head === 0x04;
  const compressed = point.length === 33 && (head === 0x02 || head === 0x03);
  if (!uncompressed && !compressed) {
    const first = head < 0 ? "" : `, first byte 0x${(head < 16 ? "0" : "") + head.toString(16)}`;
    invalid(`${what}: EC point of ${point.length} bytes${first} is neither uncompressed (65 bytes, 0x04) nor compressed (33 bytes, 0x02/0x03)`);
  }
  try {
    // fromBytes checks coordinates < p and the curve equation (and finds y for a compressed point).
    return p256.Point.fromBytes(point).toBytes(false);
  } catch {
    return invalid(`${what}: EC point is not a point on P-256`);
  }
}

/** The P-256 point of a DER SubjectPublicKeyInfo. */
export function publicKeyFromSpki(der: Uint8Array, what = "public key"): Uint8Array {
  const spki = readWhole(der, TAG_SEQUENCE, `${what} SubjectPublicKeyInfo`);
  return pointOfSpki(der, spki.valueStart, spki.end, what);
}

/** The P-256 point of a DER X.509 certificate's subjectPublicKeyInfo. */
export function publicKeyFromCertificate(der: Uint8Array): Uint8Array {
  const what = "certificate";
  const cert = readWhole(der, TAG_SEQUENCE, what);
  const tbs = expectTlv(der, cert.valueStart, cert.end, TAG_SEQUENCE, "tbsCertificate");
  // signatureAlgorithm and signatureValue must follow, and nothing else: a truncated or padded
  // certificate is refused even though only tbsCertificate is read.
  const sigAlg = expectTlv(der, tbs.end, cert.end, TAG_SEQUENCE, "certificate signatureAlgorithm");
  const sigValue = readTlv(der, sigAlg.end, cert.end, "certificate signatureValue");
  expectEnd(sigValue.end, cert.end, "the certificate's signatureValue");

  let at = tbs.valueStart;
  const first = readTlv(der, at, tbs.end, "tbsCertificate version or serialNumber");
  if (first.tag === 0xa0) at = first.end; // [0] EXPLICIT version, absent for v1
  const serial = expectTlv(der, at, tbs.end, TAG_INTEGER, "tbsCertificate serialNumber");
  // Skipped, not interpreted: only their framing is checked.
  let next = serial.end;
  for (const field of ["signature AlgorithmIdentifier", "issuer", "validity", "subject"]) {
    next = expectTlv(der, next, tbs.end, TAG_SEQUENCE, `tbsCertificate ${field}`).end;
  }
  const spki = expectTlv(der, next, tbs.end, TAG_SEQUENCE, "tbsCertificate subjectPublicKeyInfo");
  // issuerUniqueID, subjectUniqueID and extensions may follow; they are not needed.
  return pointOfSpki(der, spki.valueStart, spki.end, "certificate key");
}

/**
 * The key from the first PEM block labelled "PUBLIC KEY" or "CERTIFICATE" in `text`
 * (other blocks, such as a private key in the same file, are skipped).
 */
export function publicKeyFromPem(text: string): Uint8Array {
  const blocks = parsePem(text);
  if (blocks.length === 0) {
    throw new OtaError("malformed", "PEM: no -----BEGIN ...----- block found (expected PUBLIC KEY or CERTIFICATE)");
  }
  for (const b of blocks) {
    if (b.label === "PUBLIC KEY") return publicKeyFromSpki(b.der);
    if (b.label === "CERTIFICATE") return publicKeyFromCertificate(b.der);
  }
  return invalid(`PEM has no PUBLIC KEY or CERTIFICATE block; found ${blocks.map((b) => JSON.stringify(b.label)).join(", ")}`);
}

/** SubjectPublicKeyInfo contents in der[start..end): SEQUENCE { algorithm, BIT STRING key }. */
function pointOfSpki(der: Uint8Array, start: number, end: number, what: string): Uint8Array {
  const alg = expectTlv(der, start, end, TAG_SEQUENCE, `${what} AlgorithmIdentifier`);
  const algOid = expectTlv(der, alg.valueStart, alg.end, TAG_OID, `${what} algorithm`);
  const oid = readOid(der, algOid, `${what} algorithm`);
  if (oid !== EC_PUBLIC_KEY) invalid(`${what} is ${named(oid)}, not EC P-256`);

  // ECParameters: namedCurve OID; explicit parameters (SEQUENCE) and implicitCA (NULL) are
  // refused as RFC 5480 requires, since they would need the curve checked field by field.
  const params = readTlv(der, algOid.end, alg.end, `${what} EC parameters`);
  if (params.tag !== TAG_OID) invalid(`${what} has EC parameters as ${tagName(params.tag)}; only the named curve prime256v1 is supported`);
  const curve = readOid(der, params, `${what} curve`);
  if (curve !== PRIME256V1) invalid(`${what} curve ${named(curve)} is not P-256`);
  expectEnd(params.end, alg.end, `${what} EC parameters`);

  const key = readTlv(der, alg.end, end, `${what} subjectPublicKey`);
  const point = bitStringBytes(der, key, `${what} subjectPublicKey`);
  expectEnd(key.end, end, `${what} subjectPublicKey`);
  return publicKeyFromPoint(point, what);
}
