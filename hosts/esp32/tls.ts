/**
 * TLS settings for Moddable's TLS socket from the PEM text an app is provisioned with.
 *
 * Moddable's TLS (ssl/session, used by the ECMA-419 TLS socket and by SecureSocket) takes DER
 * in ArrayBuffers, in a `secure` dictionary (documentation/network/securesocket.md):
 * `certificate` is the one CA certificate to trust, `clientCertificates` the device's chain,
 * `clientKey` its private key as PKCS#8 PrivateKeyInfo (what Moddable's
 * Transform.privateKeyToPrivateKeyInfo produces), `protocolVersion` 0x303 for TLS 1.2.
 * Converting here, once, keeps PEM handling out of each connection.
 *
 * The device key must be RSA: Moddable's TLS (modules/crypt/ssl, SDK 8.2.3) signs its
 * CertificateVerify with PKCS#1 v1.5 RSA only, so an EC key would fail every handshake that asks
 * for a client certificate; it is refused here, with the reason, instead.
 */
import { parsePem, type PemBlock } from "xs-ota/codec/pem";
import { OtaError } from "xs-ota/errors";
import { copyBuffer } from "./buffers.ts";
import { concatBytes } from "xs-ota/codec/bytes";

/** PEM text as provisioned: the CA to trust, and for mutual TLS the device's certificate and key. */
export interface TlsPem {
  ca?: string;
  certificate?: string;
  privateKey?: string;
  /** ALPN protocol name, e.g. "x-amzn-mqtt-ca" for AWS IoT on port 443. */
  alpn?: string;
}

export interface SecureOptions {
  protocolVersion: number;
  certificate?: ArrayBuffer;
  clientCertificates?: ArrayBuffer[];
  clientKey?: ArrayBuffer;
  applicationLayerProtocolNegotiation?: string;
}

const TLS_1_2 = 0x303;
// 1.2.840.10045.2.1 id-ecPublicKey.
const EC_ALGORITHM = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const EC_REFUSED = "the device key is an EC key; Moddable's TLS signs the handshake with RSA keys only: use an RSA device certificate (AWS's default; xs-ota thing create --key-type rsa)";
// 1.2.840.113549.1.1.1 rsaEncryption, with its NULL parameters.
const RSA_ALGORITHM = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];

export function secureOptions(pem: TlsPem): SecureOptions {
  const out: SecureOptions = { protocolVersion: TLS_1_2 };
  if (pem.ca !== undefined) {
    // The TLS stack takes one trust anchor; a bundle's first certificate is the one used.
    out.certificate = copyBuffer(certificates(pem.ca, "CA")[0]);
  }
  if (pem.certificate !== undefined) out.clientCertificates = certificates(pem.certificate, "device certificate").map(copyBuffer);
  if (pem.privateKey !== undefined) out.clientKey = copyBuffer(privateKeyInfo(pem.privateKey));
  if (pem.alpn !== undefined) out.applicationLayerProtocolNegotiation = pem.alpn;
  return out;
}

function certificates(text: string, what: string): Uint8Array[] {
  const found = parsePem(text).filter((b) => b.label === "CERTIFICATE");
  if (!found.length) throw new OtaError("malformed", `the ${what} PEM holds no CERTIFICATE block`);
  return found.map((b) => b.der);
}

function privateKeyInfo(text: string): Uint8Array {
  const block: PemBlock | undefined = parsePem(text).find((b) => b.label.endsWith("PRIVATE KEY"));
  if (!block) throw new OtaError("malformed", "the device key PEM holds no PRIVATE KEY block");
  if (block.label === "EC PRIVATE KEY" || (block.label === "PRIVATE KEY" && hasEcAlgorithm(block.der))) throw new OtaError("key-invalid", EC_REFUSED);
  if (block.label === "PRIVATE KEY") return block.der;
  if (block.label === "RSA PRIVATE KEY") return wrapRsaKey(block.der);
  throw new OtaError("malformed", `a "${block.label}" key must be PKCS#8 for Moddable's TLS: openssl pkcs8 -topk8 -nocrypt -in key.pem`);
}

/** Whether a PrivateKeyInfo's algorithm (within its first bytes) is id-ecPublicKey. */
function hasEcAlgorithm(der: Uint8Array): boolean {
  const end = Math.min(der.length, 32) - EC_ALGORITHM.length;
  for (let i = 0; i <= end; i++) if (EC_ALGORITHM.every((b, j) => der[i + j] === b)) return true;
  return false;
}

/** PKCS#1 RSAPrivateKey -> PKCS#8 PrivateKeyInfo { version 0, rsaEncryption, OCTET STRING key }. */
function wrapRsaKey(pkcs1: Uint8Array): Uint8Array {
  const octets = tlv(0x04, pkcs1);
  return tlv(0x30, concatBytes([Uint8Array.of(0x02, 0x01, 0x00), Uint8Array.from(RSA_ALGORITHM), octets]));
}

function tlv(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return concatBytes([Uint8Array.of(tag, ...length), body]);
}
