/**
 * xs-ota keygen --out DIR
 * xs-ota sign --key KEY.pem FILE
 * xs-ota verify --key PUB_OR_CERT.pem --sig BASE64 FILE
 *
 * Signatures are what AWS code signing produces for `sig-sha256-ecdsa`: ECDSA P-256 over the
 * SHA-256 of the whole file, DER, base64. `verify` runs the device's own code path (PEM, DER and
 * base64 parsing in modules/, the portable verifier), so it answers what a device would.
 */
import { createPrivateKey, createSign, generateKeyPairSync } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync, writeFileSync } from "node:fs";
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

function options(args: string[], names: string[], io: Io, usage: string): { values: Record<string, string>; rest: string[] } | undefined {
  const values: Record<string, string> = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith("--")) {
      const name = args[i].slice(2);
      if (!names.includes(name) || args[i + 1] === undefined) {
        io.err(`xs-ota: ${names.includes(name) ? `--${name} needs a value` : `unknown option ${args[i]}`}`);
        io.err(`usage: ${usage}`);
        return undefined;
      }
      values[name] = args[++i];
    } else rest.push(args[i]);
  }
  return { values, rest };
}

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

export function keygenCommand(args: string[], io: Io): number {
  const usage = "xs-ota keygen --out DIR";
  const o = options(args, ["out"], io, usage);
  if (!o || !o.values.out || o.rest.length) {
    if (o) io.err(`usage: ${usage}`);
    return 2;
  }
  const dir = o.values.out;
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    io.err(`error: ${dir} is a file; --out names the directory the two key files go in`);
    return 1;
  }
  const privatePath = join(dir, "signing-key.pem");
  const publicPath = join(dir, "signing-key.pub.pem");
  for (const p of [privatePath, publicPath]) {
    if (existsSync(p)) {
      io.err(`error: ${p} exists; keygen never overwrites a key`);
      return 1;
    }
  }
  writeSigningKeys(dir);
  io.out(`private key: ${privatePath} (keep it secret; sign with it)`);
  io.out(`public key:  ${publicPath} (put it on the device)`);
  io.out("for AWS code signing, make a certificate from the private key, e.g.");
  io.out(`  openssl req -new -x509 -key ${privatePath} -subj /CN=ota-signer -days 3650 -out ${join(dir, "signing-cert.pem")}`);
  return 0;
}

export function signCommand(args: string[], io: Io): number {
  const usage = "xs-ota sign --key KEY.pem FILE";
  const o = options(args, ["key"], io, usage);
  if (!o || !o.values.key || o.rest.length !== 1) {
    if (o) io.err(`usage: ${usage}`);
    return 2;
  }
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
  const usage = "xs-ota verify --key PUB_OR_CERT.pem --sig BASE64 FILE";
  const o = options(args, ["key", "sig"], io, usage);
  if (!o || !o.values.key || o.values.sig === undefined || o.rest.length !== 1) {
    if (o) io.err(`usage: ${usage}`);
    return 2;
  }
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
