/**
 * A throwaway certificate authority for the https tests, made by the real openssl CLI so the
 * certificates are what a deployment's tooling would make, not what a JS library thinks they are.
 * P-256 keys: quick to generate, and what an ESP32's mbedTLS handles best.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export interface PemFiles {
  key: string;
  cert: string;
  keyPath: string;
  certPath: string;
}

export interface TestCa {
  dir: string;
  /** The CA: its certificate is what a client passes as `ca`. */
  ca: PemFiles;
  /** Signed by the CA for DNS:localhost and IP:127.0.0.1 (CN localhost). */
  server: PemFiles;
  /** Signed by the same CA, but only for DNS:other.invalid: a host-name mismatch on loopback. */
  otherName: PemFiles;
}

const made = new Map<string, TestCa>();

function openssl(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
}

function files(dir: string, name: string): PemFiles {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.pem`);
  return { key: readFileSync(keyPath, "utf8"), cert: readFileSync(certPath, "utf8"), keyPath, certPath };
}

/** A leaf key and certificate for `cn` with `san`, signed by the CA in `dir`. */
function leaf(dir: string, name: string, cn: string, san: string, serial: number): PemFiles {
  writeFileSync(
    join(dir, `${name}.ext`),
    [`subjectAltName=${san}`, "basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=serverAuth", ""].join("\n"),
  );
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(dir, "req", "-new", ...ec, "-keyout", `${name}.key`, "-subj", `/CN=${cn}`, "-addext", `subjectAltName=${san}`, "-out", `${name}.csr`);
  // x509 -req drops the CSR's extensions unless told otherwise; the extfile is what counts.
  openssl(dir, "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", String(serial), "-days", "2", "-sha256", "-extfile", `${name}.ext`, "-out", `${name}.pem`);
  return files(dir, name);
}

/**
 * Makes (once per directory and process) a CA and two server certificates in `dir`, or in a new
 * temporary directory. Different directories give unrelated CAs, for "wrong CA" tests.
 */
export function makeTestCa(dir?: string): TestCa {
  const where = resolve(dir ?? mkdtempSync(join(tmpdir(), "xs-ota-ca-")));
  const cached = made.get(where);
  if (cached !== undefined) return cached;
  mkdirSync(where, { recursive: true });
  openssl(
    where,
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=xs-ota test CA", "-days", "2", "-sha256",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  );
  const ca: TestCa = {
    dir: where,
    ca: files(where, "ca"),
    server: leaf(where, "server", "localhost", "DNS:localhost,IP:127.0.0.1", 2),
    otherName: leaf(where, "other-name", "other.invalid", "DNS:other.invalid", 3),
  };
  made.set(where, ca);
  return ca;
}
