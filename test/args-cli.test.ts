/**
 * The command-line layer (cli/args.ts) across every command: --help, --version, usage errors,
 * EPIPE; and the local checks that come before the cloud or the flash is touched.
 */
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCliLines } from "./support/cli.ts";
import { writeEndpoint } from "../cli/endpoint.ts";

const COMMANDS = [
  "partitions check", "otadata decode", "otadata encode", "keygen", "sign", "verify",
  "job parse", "job document", "job create", "job list", "job describe", "cloud", "thing create",
  "sim", "enos register", "demo", "bundle", "image pack", "image info", "fetch", "delta make", "delta apply",
];

const dir = mkdtempSync(join(tmpdir(), "xs-ota-args-"));

describe("every command's --help and usage errors", () => {
  it.each(COMMANDS)("xs-ota %s --help: usage and options on stdout, exit 0", async (command) => {
    const r = await runCliLines([...command.split(" "), "--help"]);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    expect(r.out[0]).toMatch(new RegExp(`^usage: xs-ota ${command}`));
    expect(r.out).toContain("options:");
    const h = await runCliLines([...command.split(" "), "-h"]);
    expect(h.out).toEqual(r.out);
  });

  it.each(COMMANDS)("xs-ota %s --bogus: the reason and usage on stderr, exit 2", async (command) => {
    const r = await runCliLines([...command.split(" "), "--bogus"]);
    expect(r.code).toBe(2);
    expect(r.out).toEqual([]);
    expect(r.err[0]).toBe(`xs-ota ${command}: unknown option '--bogus'`);
    expect(r.err[1]).toMatch(new RegExp(`^usage: xs-ota ${command}`));
  });

  it("a missing value and a missing required option are usage errors", async () => {
    expect((await runCliLines(["job", "create", "--thing"])).err[0]).toBe("xs-ota job create: --thing needs a value");
    expect((await runCliLines(["job", "create", "--file", "x.bin"])).err[0]).toBe("xs-ota job create: --thing is required");
    expect((await runCliLines(["sim", "--cloud", "gcp"])).err[0]).toBe("xs-ota sim: --cloud takes aws, enos, got gcp");
  });

  it("xs-ota, xs-ota --help: the command list on stdout; --version: package.json's", async () => {
    for (const args of [[], ["--help"]]) {
      const r = await runCliLines(args);
      expect(r.code).toBe(0);
      expect(r.err).toEqual([]);
      expect(r.out[0]).toMatch(/^usage: xs-ota <command>/);
    }
    const v = await runCliLines(["--version"]);
    expect(v.out).toEqual([JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version]);
  });

  it("| head -1 ends quietly (EPIPE), exit 0", () => {
    const out = execFileSync("sh", ["-c", "node bin/xs-ota.js sim --help 2>/tmp/xs-ota-epipe.err | head -1; cat /tmp/xs-ota-epipe.err"], { encoding: "utf8" });
    expect(out).toMatch(/^usage: xs-ota sim/);
    expect(out).not.toMatch(/Unhandled|EPIPE/);
  });
});

describe("local problems are reported as local", () => {
  const keyDir = join(dir, "keys");

  it("keygen writes a code-signing certificate and says how to import it", async () => {
    const r = await runCliLines(["keygen", "--out", keyDir]);
    expect(r.code, r.err.join("\n")).toBe(0);
    const cert = new X509Certificate(readFileSync(join(keyDir, "signing-cert.pem")));
    expect(cert.checkPrivateKey(await import("node:crypto").then((c) => c.createPrivateKey(readFileSync(join(keyDir, "signing-key.pem")))))).toBe(true);
    const x509 = await import("@peculiar/x509");
    const parsed = new x509.X509Certificate(readFileSync(join(keyDir, "signing-cert.pem"), "utf8"));
    const ku = parsed.getExtension(x509.KeyUsagesExtension);
    expect(ku?.critical).toBe(true);
    expect(ku?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(parsed.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([x509.ExtendedKeyUsage.codeSigning]);
    expect(r.out.join("\n")).toContain(`aws acm import-certificate --certificate fileb://${join(keyDir, "signing-cert.pem")} --private-key fileb://${join(keyDir, "signing-key.pem")}`);
  });

  it("job create --file MISSING and --key PUBLIC fail before the cloud is asked", async () => {
    const missing = await runCliLines(["job", "create", "--thing", "t", "--file", join(dir, "nope.bin"), "--control", "http://127.0.0.1:9"]);
    expect([missing.code, missing.err]).toEqual([1, [`error: cannot read ${join(dir, "nope.bin")}: no such file`]]);
    const pub = join(keyDir, "signing-key.pub.pem");
    const wrong = await runCliLines(["job", "create", "--thing", "t", "--file", pub, "--key", pub, "--control", "http://127.0.0.1:9"]);
    expect([wrong.code, wrong.err]).toEqual([1, [`error: ${pub} is a public key; job create signs with the private key (signing-key.pem)`]]);
  });

  it("sim --key PRIVATE is refused before anything is flashed", async () => {
    const key = join(keyDir, "signing-key.pem");
    const r = await runCliLines(["sim", "--key", key, "--firmware", key, "--dir", join(dir, "sim"), "--broker", "mqtt://127.0.0.1:9"]);
    expect([r.code, r.err]).toEqual([1, [`error: ${key} is a private key; the device needs the public key (signing-key.pub.pem)`]]);
    expect(r.out).toEqual([]);
    const notKey = join(dir, "not-a-key.pem");
    writeFileSync(notKey, "hello\n");
    expect((await runCliLines(["sim", "--key", notKey])).err[0]).toMatch(/is not a PEM public key/);
  });

  it("a cloud.json naming something that is not an xs-ota cloud is refused", async () => {
    const data = join(dir, "data");
    writeEndpoint(join(dir), { pid: process.pid, control: "http://127.0.0.1:9", mqtt: "mqtt://127.0.0.1:9", https: "https://127.0.0.1:9", http: "http://127.0.0.1:9", ca: "ca.pem" });
    const r = await runCliLines(["job", "list", "--data", dir]);
    expect(r.code).toBe(1);
    expect(r.err[0]).toMatch(/^error: no xs-ota cloud at http:\/\/127\.0\.0\.1:9: start one with `xs-ota cloud`/);
    void data;
  });
});

describe("job parse takes a bare job document", () => {
  it("wraps it as an execution and says so", async () => {
    const file = join(dir, "doc.json");
    writeFileSync(file, JSON.stringify({ afr_ota: { protocols: ["HTTP"], files: [{ filepath: "/fw", filesize: 10, fileid: 0, certfile: "signer.crt", update_data_url: "https://x/fw.bin", auth_scheme: "aws.s3.presigned", "sig-sha256-ecdsa": Buffer.alloc(70, 1).toString("base64") }] } }));
    const r = await runCliLines(["job", "parse", file]);
    expect(r.err[0]).toMatch(/^a bare job document: parsed as the execution of a job 'local-document'/);
    expect(r.code, r.err.join("\n")).toBe(0);
    expect(JSON.parse(r.out.join("\n")).jobId).toBe("local-document");
  });
});

describe("xs-ota cloud's cloud.json", () => {
  it("is written while the cloud runs, found by job list, and removed when it stops", async () => {
    const { cloudCommand } = await import("../cli/cloud.ts");
    const data = join(dir, "cloud");
    let listed: string[] = [];
    let seen: unknown;
    const code = await cloudCommand(["--data", data, "--mqtt-port", "0", "--mqtts-port", "0", "--control-port", "0", "--https-port", "0"], { out: () => {}, err: () => {} }, {
      stopped: async (cloud) => {
        seen = JSON.parse(readFileSync(join(data, "cloud.json"), "utf8"));
        expect(seen).toMatchObject({ pid: process.pid, control: cloud.urls.control, mqtt: cloud.urls.mqtt });
        listed = (await runCliLines(["job", "list", "--data", data])).out;
      },
    });
    expect(code).toBe(0);
    expect(listed).toEqual(["no jobs"]);
    expect(() => readFileSync(join(data, "cloud.json"))).toThrow();
  });
});
