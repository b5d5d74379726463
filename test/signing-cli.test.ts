/**
 * xs-ota keygen / sign / verify against the real openssl binary, both ways, and the ways a
 * signature check must fail. Signatures are AWS's `sig-sha256-ecdsa`: base64 DER ECDSA P-256
 * over SHA-256 of the whole file.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "./support/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-sign-"));
const path = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync("openssl", args, { encoding: "buffer", stdio: ["ignore", "pipe", "pipe"] });

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runCli(args);
}

const firmware = path("firmware.bin");
const opensslSig = (file: string, key = path("k.pem")) => openssl("dgst", "-sha256", "-sign", key, file).toString("base64");

beforeAll(() => {
  const data = Buffer.alloc(300_001);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  writeFileSync(firmware, data);
  openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path("k.pem"));
  openssl("ec", "-in", path("k.pem"), "-pubout", "-out", path("pub.pem"));
  openssl("req", "-new", "-x509", "-key", path("k.pem"), "-subj", "/CN=xs-ota-test", "-days", "1", "-out", path("cert.pem"));
  openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path("other.pem"));
  openssl("ec", "-in", path("other.pem"), "-pubout", "-out", path("other.pub.pem"));
  openssl("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", path("p384.pem"));
  openssl("ec", "-in", path("p384.pem"), "-pubout", "-out", path("p384.pub.pem"));
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("rsa.key"), "-subj", "/CN=rsa", "-days", "1", "-out", path("rsa-cert.pem"));
});

describe("openssl signs, xs-ota verifies", () => {
  it("verifies openssl's signatures with the public key and with the certificate (low-S and high-S alike)", async () => {
    for (let i = 0; i < 8; i++) {
      const sig = opensslSig(firmware);
      expect(await run("verify", "--key", path("pub.pem"), "--sig", sig, firmware)).toMatchObject({ code: 0, out: "valid" });
      expect((await run("verify", "--key", path("cert.pem"), "--sig", sig, firmware)).out).toBe("valid");
    }
  });
});

describe("xs-ota signs, openssl verifies", () => {
  it("keygen makes a P-256 pair openssl reads; sign's signature passes openssl dgst -verify", async () => {
    const keys = path("keys");
    expect((await run("keygen", "--out", keys)).code).toBe(0);
    expect(openssl("pkey", "-in", join(keys, "signing-key.pem"), "-noout", "-text").toString()).toMatch(/prime256v1|P-256/);
    for (let i = 0; i < 4; i++) {
      const signed = await run("sign", "--key", join(keys, "signing-key.pem"), firmware);
      expect(signed.code).toBe(0);
      writeFileSync(path("sig.der"), Buffer.from(signed.out, "base64"));
      const verified = openssl("dgst", "-sha256", "-verify", join(keys, "signing-key.pub.pem"), "-signature", path("sig.der"), firmware);
      expect(verified.toString().trim()).toBe("Verified OK");
      expect((await run("verify", "--key", join(keys, "signing-key.pub.pem"), "--sig", signed.out, firmware)).out).toBe("valid");
    }
  });

  it("signs with openssl's SEC1 key files too", async () => {
    const signed = await run("sign", "--key", path("k.pem"), firmware);
    writeFileSync(path("sig2.der"), Buffer.from(signed.out, "base64"));
    expect(openssl("dgst", "-sha256", "-verify", path("pub.pem"), "-signature", path("sig2.der"), firmware).toString()).toMatch(/Verified OK/);
  });
});

describe("what must not verify", () => {
  const refused = async (key: string, sig: string, file: string, reason: RegExp) => {
    const r = await run("verify", "--key", key, "--sig", sig, file);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^invalid: /);
    expect(r.out).toMatch(reason);
  };

  it("a flipped bit anywhere in the file", async () => {
    const sig = opensslSig(firmware);
    for (const at of [0, 150_000, 300_000]) {
      const bad = Buffer.from(readFileSync(firmware));
      bad[at] ^= 0x01;
      writeFileSync(path("flipped.bin"), bad);
      await refused(path("pub.pem"), sig, path("flipped.bin"), /does not match/);
    }
  });

  it("a truncated file", async () => {
    writeFileSync(path("short.bin"), readFileSync(firmware).subarray(0, 299_999));
    await refused(path("pub.pem"), opensslSig(firmware), path("short.bin"), /does not match/);
  });

  it("the wrong key, and a signature made for another file", async () => {
    await refused(path("other.pub.pem"), opensslSig(firmware), firmware, /does not match/);
    writeFileSync(path("other.bin"), "another file");
    await refused(path("pub.pem"), opensslSig(path("other.bin")), firmware, /does not match/);
  });

  it("garbage base64, and DER with trailing bytes or wrong lengths", async () => {
    await refused(path("pub.pem"), "not base64 at all!", firmware, /base64/i);
    const der = Buffer.from(opensslSig(firmware), "base64");
    await refused(path("pub.pem"), Buffer.concat([der, Buffer.from([0])]).toString("base64"), firmware, /trailing/i);
    const wrongLength = Buffer.from(der);
    wrongLength[1] += 1;
    await refused(path("pub.pem"), wrongLength.toString("base64"), firmware, /DER|length/i);
    await refused(path("pub.pem"), der.subarray(0, der.length - 1).toString("base64"), firmware, /DER|length|malformed/i);
  });

  it("a certificate or key that is not P-256", async () => {
    const sig = opensslSig(firmware);
    await refused(path("rsa-cert.pem"), sig, firmware, /rsa|not EC P-256/i);
    await refused(path("p384.pub.pem"), sig, firmware, /secp384r1|P-256/);
  });

  it("sign refuses a key that is not P-256", async () => {
    const r = await run("sign", "--key", path("p384.pem"), firmware);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/secp384r1.*P-256/);
  });
});

describe("command line", () => {
  it("keygen never overwrites a key", async () => {
    const keys = path("twice");
    expect((await run("keygen", "--out", keys)).code).toBe(0);
    const before = readFileSync(join(keys, "signing-key.pem"), "utf8");
    const again = await run("keygen", "--out", keys);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/exists/);
    expect(readFileSync(join(keys, "signing-key.pem"), "utf8")).toBe(before);
  });

  it("usage errors exit 2", async () => {
    expect((await run("verify", "--key", path("pub.pem"), firmware)).code).toBe(2);
    expect((await run("sign", firmware)).code).toBe(2);
    expect((await run("keygen")).code).toBe(2);
    expect((await run("verify", "--bogus", "x", firmware)).code).toBe(2);
  });
});
