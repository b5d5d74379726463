/**
 * A local certificate authority for the desktop cloud (Node only): a CA and a server certificate
 * for CN localhost with SAN DNS:localhost and IP:127.0.0.1, so the file server can speak HTTPS and
 * simulated devices can trust it by passing the CA certificate as their `ca`.
 *
 * Made in Node with @peculiar/x509 over WebCrypto (no openssl binary needed). ECDSA P-256 keys and
 * SHA-256 signatures: quick to make and what an ESP32's mbedTLS handles best. Keys are PKCS#8 PEM
 * ("PRIVATE KEY"), certificates PEM.
 *
 * With `dir`, the four files (ca.pem, ca.key, server.pem, server.key) are written there (each
 * atomically: temporary file + rename, keys mode 0600) and reused by later calls, also from other
 * processes (they are read again on every call), as long as they parse, the server certificate was issued by the CA and both are
 * valid for at least another day; otherwise a new CA is made and replaces them.
 *
 * `issueThingCertificate` makes a device's client certificate for mutual TLS (CN = thing name,
 * clientAuth), signed by that CA: what `xs-ota thing create` writes and the broker's TLS
 * listener (cloud/embedded-broker.ts) verifies.
 */
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as x509 from "@peculiar/x509";
import { OtaError } from "../modules/errors.ts";

export interface LocalCa {
  /** The CA certificate (PEM): what a client trusts. */
  caCert: string;
  /** The CA private key (PKCS#8 PEM). */
  caKey: string;
  /** The server certificate (PEM) for localhost / 127.0.0.1, issued by the CA. */
  serverCert: string;
  /** The server private key (PKCS#8 PEM). */
  serverKey: string;
}

const FILES = { caCert: "ca.pem", caKey: "ca.key", serverCert: "server.pem", serverKey: "server.key" } as const;
const DAY = 24 * 3600 * 1000;
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

/** Calls in flight per directory, so concurrent callers share one generation. */
const pending = new Map<string, Promise<LocalCa>>();

/** A CA and a localhost server certificate; kept in `dir` when given and reused from there. */
export function makeLocalCa(dir?: string): Promise<LocalCa> {
  if (dir === undefined) return generate();
  const where = resolve(dir);
  const inFlight = pending.get(where);
  if (inFlight !== undefined) return inFlight;
  const result = (async () => {
    const loaded = load(where);
    if (loaded !== undefined) return loaded;
    const ca = await generate();
    save(where, ca);
    return ca;
  })();
  pending.set(where, result);
  const forget = () => void pending.delete(where);
  result.then(forget, forget);
  return result;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  bytes[0] |= 0x01; // and no leading zero byte
  return bytes.toString("hex");
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

async function generate(): Promise<LocalCa> {
  x509.cryptoProvider.set(webcrypto);
  const subtle = webcrypto.subtle;
  const now = Date.now();
  const notBefore = new Date(now - 3600 * 1000);

  const caKeys = await subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const caName = "CN=xs-ota local CA, O=xs-ota";
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: caName,
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    notBefore,
    notAfter: new Date(now + 3650 * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const serverKeys = await subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const serverCert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: "CN=localhost",
    issuer: caCert.subject,
    publicKey: serverKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALGORITHM,
    notBefore,
    // 825 days: the longest server certificate lifetime Apple's TLS stack accepts.
    notAfter: new Date(now + 825 * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: "dns", value: "localhost" },
        { type: "ip", value: "127.0.0.1" },
      ]),
      await x509.SubjectKeyIdentifierExtension.create(serverKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  return {
    caCert: caCert.toString("pem") + "\n",
    caKey: pem("PRIVATE KEY", await subtle.exportKey("pkcs8", caKeys.privateKey)),
    serverCert: serverCert.toString("pem") + "\n",
    serverKey: pem("PRIVATE KEY", await subtle.exportKey("pkcs8", serverKeys.privateKey)),
  };
}

/** The CA in `dir` if it is complete, consistent and valid for at least another day. */
function load(dir: string): LocalCa | undefined {
  try {
    const ca: LocalCa = {
      caCert: readFileSync(join(dir, FILES.caCert), "utf8"),
      caKey: readFileSync(join(dir, FILES.caKey), "utf8"),
      serverCert: readFileSync(join(dir, FILES.serverCert), "utf8"),
      serverKey: readFileSync(join(dir, FILES.serverKey), "utf8"),
    };
    const caX = new X509Certificate(ca.caCert);
    const serverX = new X509Certificate(ca.serverCert);
    const soon = Date.now() + DAY;
    if (!caX.ca || Date.parse(caX.validTo) < soon || Date.parse(serverX.validTo) < soon) return undefined;
    if (!serverX.checkIssued(caX) || !serverX.verify(caX.publicKey)) return undefined;
    if (!serverX.checkPrivateKey(createPrivateKey(ca.serverKey))) return undefined;
    if (!caX.checkPrivateKey(createPrivateKey(ca.caKey))) return undefined;
    if (serverX.checkHost("localhost") === undefined || serverX.checkIP("127.0.0.1") === undefined) return undefined;
    return ca;
  } catch {
    return undefined;
  }
}

function save(dir: string, ca: LocalCa): void {
  mkdirSync(dir, { recursive: true });
  for (const [field, name] of Object.entries(FILES) as [keyof LocalCa, string][]) {
    const target = join(dir, name);
    const temp = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    writeFileSync(temp, ca[field], { mode: name.endsWith(".key") ? 0o600 : 0o644 });
    renameSync(temp, target);
  }
}

/** AWS IoT's rule for thing names. */
const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;

/** Why `name` cannot be a thing name, or undefined when it can. */
export function thingNameProblem(name: string): string | undefined {
  if (THING_NAME.test(name)) return undefined;
  const shown = JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name);
  if (name.length === 0 || name.length > 128) return `thing name ${shown}: 1 to 128 characters, got ${name.length}`;
  return `thing name ${shown}: letters, digits, ':', '_' and '-' only (AWS IoT's rule)`;
}

export interface ThingCertificate {
  /** The device certificate (PEM), CN = the thing name, issued by the CA. */
  cert: string;
  /** Its private key (PKCS#8 PEM). */
  key: string;
}

export interface ThingCertificateOptions {
  /**
   * The device key: "ec" (default) ECDSA P-256; "rsa" RSA 2048, for TLS stacks that sign the
   * handshake with RSA only, as Moddable's (its CertificateVerify is PKCS#1 v1.5 RSA, SDK 8.2.3).
   */
  keyType?: "ec" | "rsa";
}

const RSA_KEY = { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };

/**
 * A client certificate for `thingName`, issued by `ca` (signed ECDSA P-256 / SHA-256): what the
 * embedded broker's TLS listener takes and reads the thing name from (its CN), as AWS IoT Core
 * reads it from the certificate registered to a thing. One year: device certificates get rotated.
 */
export async function issueThingCertificate(ca: LocalCa, thingName: string, options: ThingCertificateOptions = {}): Promise<ThingCertificate> {
  const problem = thingNameProblem(thingName);
  if (problem !== undefined) throw new OtaError("bad-argument", problem);
  x509.cryptoProvider.set(webcrypto);
  const subtle = webcrypto.subtle;
  const issuer = new x509.X509Certificate(ca.caCert);
  const caKey = await subtle.importKey("pkcs8", Buffer.from(createPrivateKey(ca.caKey).export({ type: "pkcs8", format: "der" })), ALGORITHM, false, ["sign"]);
  const keys = await subtle.generateKey(options.keyType === "rsa" ? RSA_KEY : ALGORITHM, true, ["sign", "verify"]);
  // The CA's own key identifier, whichever way it was computed, so chain building matches it.
  const caKeyId = issuer.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: new x509.Name([{ "2.5.4.3": [thingName] }]),
    issuer: issuer.subject,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALGORITHM,
    notBefore: new Date(now - 3600 * 1000),
    notAfter: new Date(now + 365 * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      caKeyId !== undefined ? new x509.AuthorityKeyIdentifierExtension(caKeyId) : await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
    ],
  });
  return { cert: cert.toString("pem") + "\n", key: pem("PRIVATE KEY", await subtle.exportKey("pkcs8", keys.privateKey)) };
}
