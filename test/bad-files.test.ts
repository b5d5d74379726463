/**
 * Every command that reads a file, against the files users really hand it: missing, empty, a
 * directory, truncated, garbage. Each ends with one line that names the file and what is wrong,
 * a non-zero exit, and never a stack trace.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCliLines } from "./support/cli.ts";
import { writeSigningKeys } from "../cli/signing.ts";
import { appImage } from "./contract/boot-fixture.ts";
import { encodeOtadata, makeEntry, blankEntry } from "../modules/esp-idf/otadata.ts";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-bad-files-"));
const keys = writeSigningKeys(join(dir, "keys"));
const firmware = join(dir, "fw.bin");
const firmware2 = join(dir, "fw2.bin");
const patch = join(dir, "fw.vcdiff");
const otadata = join(dir, "otadata.bin");
const csv = join(dir, "partitions.csv");
const bundle = join(dir, "app.js");
const app = join(dir, "app.ts");

type Kind = "missing" | "empty" | "directory" | "truncated" | "garbage";
const KINDS: Kind[] = ["missing", "empty", "directory", "truncated", "garbage"];

/** A bad version of `good` (a valid file of the kind the command takes), named after the case. */
function bad(kind: Kind, good: string, label: string): string {
  const path = join(dir, "bad", `${label}-${kind}`);
  mkdirSync(join(dir, "bad"), { recursive: true });
  if (kind === "missing") return path;
  if (kind === "directory") {
    mkdirSync(path, { recursive: true });
    return path;
  }
  const bytes = readFileSync(good);
  if (kind === "empty") writeFileSync(path, "");
  if (kind === "truncated") writeFileSync(path, bytes.subarray(0, Math.max(1, Math.floor(bytes.length / 3))));
  if (kind === "garbage") writeFileSync(path, Buffer.from(Array.from({ length: 700 }, (_, i) => (i * 151 + 7) & 0xff)));
  return path;
}

beforeAll(() => {
  writeFileSync(firmware, appImage("1.0.1", 5000));
  writeFileSync(firmware2, appImage("1.0.2", 5000));
  execFileSync("xdelta3", ["-e", "-9", "-S", "none", "-A", "-D", "-n", "-f", "-s", firmware, firmware2, patch]);
  writeFileSync(otadata, encodeOtadata([makeEntry(1, 2), blankEntry()]));
  writeFileSync(csv, "# Name, Type, SubType, Offset, Size\nnvs, data, nvs, 0x9000, 0x4000\notadata, data, ota, 0xd000, 0x2000\nphy_init, data, phy, 0xf000, 0x1000\nota_0, app, ota_0, 0x10000, 0x180000\nota_1, app, ota_1, 0x190000, 0x180000\n");
  writeFileSync(bundle, "trace('hello\\n');\n");
  writeFileSync(app, "export const x: number = 1;\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SIG = "MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg==";

/** Command, the valid file it reads, and where the bad one goes in its arguments. */
const commands: [string, () => string, (f: string) => string[]][] = [
  ["partitions check", () => csv, (f) => ["partitions", "check", f]],
  ["otadata decode", () => otadata, (f) => ["otadata", "decode", f]],
  ["sign --key", () => keys.privatePath, (f) => ["sign", "--key", f, firmware]],
  ["sign FILE", () => firmware, (f) => ["sign", "--key", keys.privatePath, f]],
  ["verify --key", () => keys.publicPath, (f) => ["verify", "--key", f, "--sig", SIG, firmware]],
  ["verify FILE", () => firmware, (f) => ["verify", "--key", keys.publicPath, "--sig", SIG, f]],
  ["job parse", () => firmware, (f) => ["job", "parse", f]],
  ["job parse --format enos", () => firmware, (f) => ["job", "parse", "--format", "enos", f]],
  ["job document --file", () => firmware, (f) => ["job", "document", "--file", f, "--url", "https://files.example.com/fw.bin", "-o", join(dir, "job.json")]],
  ["job document --key", () => keys.privatePath, (f) => ["job", "document", "--file", firmware, "--url", "https://files.example.com/fw.bin", "--key", f, "-o", join(dir, "job.json")]],
  ["image info", () => firmware, (f) => ["image", "info", f]],
  ["image pack", () => bundle, (f) => ["image", "pack", "--version", "1.0.0", "-o", join(dir, "packed.bin"), f]],
  ["bundle", () => app, (f) => ["bundle", f, "-o", join(dir, "bundled.js")]],
  ["fetch --ca", () => keys.publicPath, (f) => ["fetch", "https://127.0.0.1:9/fw.bin", "--out", join(dir, "fetched.bin"), "--ca", f]],
  ["delta make --from", () => firmware, (f) => ["delta", "make", "--from", f, "--to", firmware2, "-o", join(dir, "made.vcdiff")]],
  ["delta make --to", () => firmware2, (f) => ["delta", "make", "--from", firmware, "--to", f, "-o", join(dir, "made.vcdiff")]],
  ["delta apply --from", () => firmware, (f) => ["delta", "apply", "--from", f, patch, "-o", join(dir, "applied.bin")]],
  ["delta apply PATCH", () => patch, (f) => ["delta", "apply", "--from", firmware, f, "-o", join(dir, "applied.bin")]],
  ["sim --key", () => keys.publicPath, (f) => ["sim", "--key", f, "--dir", join(dir, "sim"), "--firmware", firmware, "--broker", "mqtt://127.0.0.1:9", "--until", "9.9.9"]],
  ["sim --firmware", () => firmware, (f) => ["sim", "--allow-unsigned", "--dir", join(dir, "sim2"), "--firmware", f, "--broker", "mqtt://127.0.0.1:9", "--until", "9.9.9"]],
  ["sim --ca", () => keys.publicPath, (f) => ["sim", "--allow-unsigned", "--dir", join(dir, "sim3"), "--firmware", firmware, "--ca", f, "--broker", "mqtt://127.0.0.1:9", "--until", "9.9.9"]],
];

describe("bad input files", () => {
  for (const [name, good, args] of commands) {
    for (const kind of KINDS) {
      // Some files are fine truncated or as garbage for some commands (a job message is JSON; a
      // truncated firmware can still be signed): those must still end without a stack trace.
      it(`${name}: ${kind}`, async () => {
        const file = bad(kind, good(), name.replace(/[^a-z]+/g, "-"));
        // A command that took a bad file and went on to run (the simulator waits for a signal)
        // would hang here: that is a failure too.
        const r = await Promise.race([
          runCliLines(args(file)),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${name} went on with a ${kind} file`)), 20_000)),
        ]);
        const all = [...r.out, ...r.err].join("\n");
        expect(all, all).not.toMatch(/\n\s+at |^\s+at /m);
        if (kind === "missing" || kind === "empty" || kind === "directory") {
          expect(r.code, all).not.toBe(0);
          expect(r.err.join("\n"), all).toContain(file);
          expect(r.err.join("\n"), all).toMatch(kind === "missing" ? /no such file/ : kind === "empty" ? /is empty/ : /is a directory/);
        } else if (r.code !== 0) {
          // Refused as what it is ("invalid: ..." from verify is its answer, on stdout).
          expect(all.length, all).toBeGreaterThan(0);
        }
      });
    }
  }
});

describe("bad files a command finds on its own", () => {
  it("keygen --out on an existing file says so", async () => {
    const file = join(dir, "not-a-dir");
    writeFileSync(file, "x");
    const r = await runCliLines(["keygen", "--out", file]);
    expect(r.code).toBe(1);
    expect(r.err.join("\n")).toMatch(new RegExp(`${file.replace(/[/.]/g, "\\$&")} is a file`));
  });

  it("a simulated device whose nvs.json or flash.bin was damaged: the command names the file", async () => {
    const flashed = join(dir, "devices");
    // The firmware is 1.0.1 already: flashed, booted, done.
    const first = await runCliLines(["sim", "--allow-unsigned", "--dir", flashed, "--firmware", firmware, "--broker", "mqtt://127.0.0.1:9", "--until", "1.0.1"]);
    expect(first.code, first.err.join("\n")).toBe(0);
    expect(readFileSync(join(flashed, "dev-1", "flash.bin")).length).toBe(4 * 1024 * 1024);
    writeFileSync(join(flashed, "dev-1", "nvs.json"), "{ not json");
    const nvs = await runCliLines(["sim", "--allow-unsigned", "--dir", flashed, "--broker", "mqtt://127.0.0.1:9", "--until", "1.0.1"]);
    expect(nvs.code).toBe(1);
    expect([...nvs.out, ...nvs.err].join("\n")).toMatch(/nvs\.json is not the device's NVS/);
    writeFileSync(join(flashed, "dev-1", "nvs.json"), "{}");
    const flash = join(flashed, "dev-1", "flash.bin");
    writeFileSync(flash, readFileSync(flash).subarray(0, 1024 * 1024 + 100));
    const truncated = await runCliLines(["sim", "--allow-unsigned", "--dir", flashed, "--broker", "mqtt://127.0.0.1:9", "--until", "1.0.1"]);
    expect(truncated.code).toBe(1);
    expect([...truncated.out, ...truncated.err].join("\n")).toMatch(/flash\.bin is 1048676 bytes: not a whole flash chip/);
  }, 30_000);
});

describe("the cloud's own files", () => {
  it("a damaged jobs.json, jobs.log, enos-devices.json or offer record stops the cloud with the file's name", async () => {
    const { startCloud } = await import("../cloud/server.ts");
    const noJobs = JSON.stringify({ version: 1, sequence: 0, jobs: [], executions: [] });
    for (const [name, content] of [
      ["jobs.json", "{ not json"],
      // A bad line before the last is no torn append (cloud/job-store.ts): it stops the cloud.
      ["jobs.log", '{"execution": {"jobId": "j"\n{"execution": {}}\n'],
      ["enos-devices.json", "[1, 2"],
      ["files/x.json", "nope"],
    ] as const) {
      const data = join(dir, `cloud-${name.replace(/\W/g, "-")}`);
      mkdirSync(join(data, "files"), { recursive: true });
      if (name === "jobs.log") writeFileSync(join(data, "jobs.json"), noJobs);
      writeFileSync(join(data, name), content);
      const started = startCloud({ dataDir: data, mqttPort: 0, mqttsPort: 0, httpsPort: 0, httpPort: 0, controlPort: 0 });
      await expect(started).rejects.toThrow(new RegExp(join(data, name).replace(/[/.]/g, "\\$&")));
    }
  }, 30_000);
});
