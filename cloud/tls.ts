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
 */
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as x509 from "@peculiar/x509";

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
