/**
 * xs-ota keygen --out DIR
 * xs-ota sign --key KEY.pem FILE
 * xs-ota verify --key PUB_OR_CERT.pem --sig BASE64 FILE
 *
 * Signatures are what AWS code signing produces for `sig-sha256-ecdsa`: ECDSA P-256 over the
 * SHA-256 of the whole file, DER, base64. `verify` runs the device's own code path (PEM, DER and
 * base64 parsing in modules/, the portable verifier), so it answers what a device would.
 */
import { createPrivateKey, createSign, generateKeyPairSync, randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { withArgs, withArgsSync, type CommandSpec } from "./args.ts";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeFileSync } from "node:fs";
import { InputError, checkInput, readInput, readTextInput } from "./files.ts";
import { join } from "node:path";
import type { Io } from "./main.ts";
import { OtaError, isOtaError } from "../modules/errors.ts";
import { publicKeyFromPem } from "../modules/verify/keys.ts";
import { checkSignature, signatureFromBase64 } from "../modules/verify/signature.ts";
import { nobleVerifier } from "../modules/verify/noble-signature.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";

const CHUNK = 64 * 1024;

/** Feeds a file to `update` in 64 KB reads: images are never held whole. */
export function streamFile(path: string, update: (chunk: Uint8Array) => void): number {
  const fd = openSync(path, "r");
  const buffer = new Uint8Array(CHUNK);
  let total = 0;
  try {
    for (let n; (n = readSync(fd, buffer, 0, CHUNK, null)) > 0; total += n) update(buffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return total;
}

export const KEYGEN: CommandSpec = {
  name: "keygen",
  usage: ["keygen --out DIR"],
  about: [
    "Makes a code-signing key pair in DIR: signing-key.pem (private, signs), signing-key.pub.pem (public, for the device)",
    "and signing-cert.pem, a self-signed code-signing certificate for the key, as AWS code signing (ACM) takes it.",
  ],
  options: { out: { type: "string", value: "DIR", required: true, description: "the directory the key files go in (made if missing)" } },
};

export const SIGN: CommandSpec = {
  name: "sign",
  usage: ["sign --key KEY.pem FILE"],
  about: ["Prints FILE's signature as AWS code signing makes it (sig-sha256-ecdsa: ECDSA P-256, SHA-256, DER, base64)."],
  options: { key: { type: "string", value: "KEY.pem", required: true, description: "the private key (keygen's signing-key.pem)" } },
  positionals: { min: 1, max: 1, name: "FILE (the file to sign)" },
};

export const VERIFY: CommandSpec = {
  name: "verify",
  usage: ["verify --key PUB_OR_CERT.pem --sig BASE64 FILE"],
  about: ["Checks a signature of FILE with the device's own verifier: prints valid (exit 0) or invalid: why (exit 1)."],
  options: {
    key: { type: "string", value: "PUB_OR_CERT.pem", required: true, description: "the public key or certificate the device trusts" },
    sig: { type: "string", value: "BASE64", required: true, description: "the signature, base64 DER" },
  },
  positionals: { min: 1, max: 1, name: "FILE (the file to verify)" },
};

export interface SigningKeys {
  privatePath: string;
  publicPath: string;
  publicPem: string;
}

/** A fresh P-256 code-signing key pair in DIR as signing-key.pem (PKCS#8) and signing-key.pub.pem (SPKI). */
export function writeSigningKeys(dir: string): SigningKeys {
  const { privateKey, publicKey } = generateKeyPairSync("ec", {
    namedCurve: "prime256v1",
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  mkdirSync(dir, { recursive: true });
  const privatePath = join(dir, "signing-key.pem");
  const publicPath = join(dir, "signing-key.pub.pem");
  writeFileSync(privatePath, privateKey, { mode: 0o600 });
  writeFileSync(publicPath, publicKey);
  return { privatePath, publicPath, publicPem: publicKey };
}

/**
 * A self-signed X.509 certificate for the signing key, with keyUsage digitalSignature (critical)
 * and extendedKeyUsage codeSigning: AWS code signing takes a signing key only as an ACM
 * certificate, and ACM's import checks these (`aws acm import-certificate`).
 */
export async function writeSigningCertificate(dir: string, privatePem: string, publicPem: string): Promise<string> {
  x509.cryptoProvider.set(webcrypto);
  const subtle = webcrypto.subtle;
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const der = (pem: string) => Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");
  const keys: webcrypto.CryptoKeyPair = {
    privateKey: await subtle.importKey("pkcs8", der(privatePem), algorithm, false, ["sign"]),
    publicKey: await subtle.importKey("spki", der(publicPem), algorithm, true, ["verify"]),
  };
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString("hex").replace(/^[89a-f]/, "1"),
    name: "CN=xs-ota code signing",
    keys,
    signingAlgorithm: algorithm,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 3650 * 86_400_000),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const path = join(dir, "signing-cert.pem");
  writeFileSync(path, cert.toString("pem") + "\n", { flag: "wx" });
  return path;
}

export function keygenCommand(args: string[], io: Io): Promise<number> {
  return withArgs(KEYGEN, args, io, (a) => keygen(a.string("out") ?? "", io));
}

async function keygen(dir: string, io: Io): Promise<number> {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    io.err(`error: ${dir} is a file; --out names the directory the two key files go in`);
    return 1;
  }
  const privatePath = join(dir, "signing-key.pem");
  const publicPath = join(dir, "signing-key.pub.pem");
  const certPath = join(dir, "signing-cert.pem");
  for (const p of [privatePath, publicPath, certPath]) {
    if (existsSync(p)) {
      io.err(`error: ${p} exists; keygen never overwrites a key`);
      return 1;
    }
  }
  const keys = writeSigningKeys(dir);
  await writeSigningCertificate(dir, readFileSync(privatePath, "utf8"), keys.publicPem);
  io.out(`private key: ${privatePath} (keep it secret; sign with it)`);
  io.out(`public key:  ${publicPath} (put it on the device)`);
  io.out(`certificate: ${certPath} (self-signed, code signing: for AWS code signing)`);
  io.out("next, for AWS code signing, import the certificate and key into ACM:");
  io.out(`  aws acm import-certificate --certificate fileb://${certPath} --private-key fileb://${privatePath}`);
  return 0;
}

export function signCommand(args: string[], io: Io): number {
  return withArgsSync(SIGN, args, io, (a) => sign({ key: a.string("key") ?? "" }, a.positionals, io));
}

function sign(values: { key: string }, rest: readonly string[], io: Io): number {
  const o = { values, rest };
  try {
    checkInput(o.rest[0], "the file to sign");
    const keyPath = o.values.key;
    const key = (() => {
      try {
        return createPrivateKey(Buffer.from(readInput(keyPath, "the signing key")));
      } catch (e) {
        if (e instanceof InputError) throw e;
        throw new InputError(`the signing key ${keyPath} is not a private key in PEM (${(e as Error).message})`);
      }
    })();
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (key.asymmetricKeyType !== "ec" || curve !== "prime256v1") {
      io.err(`error: ${o.values.key} is a ${key.asymmetricKeyType}${curve ? ` ${curve}` : ""} key; OTA signatures need EC P-256 (prime256v1)`);
      return 1;
    }
    const signer = createSign("sha256");
    streamFile(o.rest[0], (chunk) => signer.update(chunk));
    io.out(signer.sign(key).toString("base64"));
    return 0;
  } catch (e) {
    io.err(`error: ${(e as Error).message}`);
    return 1;
  }
}

export function verifyCommand(args: string[], io: Io): number {
  return withArgsSync(VERIFY, args, io, (a) => verify({ key: a.string("key") ?? "", sig: a.string("sig") ?? "" }, a.positionals, io));
}

function verify(values: { key: string; sig: string }, rest: readonly string[], io: Io): number {
  const o = { values, rest };
  try {
    const keyPath = o.values.key;
    const keyText = readTextInput(keyPath, "the public key");
    const publicKey = (() => {
      try {
        return publicKeyFromPem(keyText);
      } catch (e) {
        // Not a key this device can use: the answer is "invalid", as for a bad signature.
        throw isOtaError(e) ? new OtaError(e.code, `the public key ${keyPath}: ${e.message}`) : e;
      }
    })();
    const signature = signatureFromBase64(o.values.sig);
    const hash = nodeDigests.create("sha256");
    checkInput(o.rest[0], "the file to verify");
    streamFile(o.rest[0], (chunk) => hash.update(chunk));
    checkSignature(nobleVerifier, publicKey, hash.finish(), signature);
    io.out("valid");
    return 0;
  } catch (e) {
    if (isOtaError(e)) {
      io.out(`invalid: ${e.message}`);
      return 1;
    }
    io.err(`error: ${(e as Error).message}`);
    return 1;
  }
}
