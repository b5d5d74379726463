/**
 * `xs-ota delta make|apply` through the CLI's entry, against Debian's xdelta3: the patch is
 * plain RFC 3284 (no secondary compression, application header or Adler-32), xdelta3 -d agrees
 * with the device's decoder, and every problem ends in one line.
 */
import { afterAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { runCliLines } from "./support/cli.ts";
import { applyDelta } from "../cloud/delta.ts";
import { VcdiffApplier } from "../modules/delta/vcdiff.ts";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-delta-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, bytes?: Uint8Array) => {
  const path = join(dir, name);
  if (bytes) writeFileSync(path, bytes);
  return path;
};
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** OLD with a few edits: an insertion, a changed stretch, a moved block. */
function edited(old: Uint8Array, seed: number): Uint8Array {
  const r = new Uint8Array(randomBytes(200 + seed));
  return Buffer.concat([old.subarray(0, 50000), r, old.subarray(50100, 150000), old.subarray(10000, 30000), old.subarray(150000)]);
}

const OLD = new Uint8Array(randomBytes(300000));
const NEW = edited(OLD, 1);
const old = file("old.bin", OLD);
const neu = file("new.bin", NEW);

/** Windows in a patch, counted by the device's decoder (one checkpoint per window). */
function windows(patch: Uint8Array, source: Uint8Array): number {
  const reader = (b: Uint8Array) => ({ read: (n: number, at: number) => b.slice(at, at + n).buffer });
  let out = new Uint8Array(0);
  const a = new VcdiffApplier({ patch: reader(patch), patchSize: patch.length, source: reader(source), sourceSize: source.length, target: { read: (n, at) => out.slice(at, at + n).buffer }, write: (b) => (out = Buffer.concat([out, b])) });
  let count = 0;
  let last = a.checkpoint.patchOffset;
  while (!a.step(1000)) {
    if (a.checkpoint.patchOffset !== last) count++;
    last = a.checkpoint.patchOffset;
  }
  return count + (a.checkpoint.patchOffset !== last ? 1 : 0);
}

function withEnv<T>(name: string, value: string, run: () => Promise<T>): Promise<T> {
  const before = process.env[name];
  process.env[name] = value;
  return run().finally(() => {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  });
}

describe("xs-ota delta make", () => {
  it("writes a plain RFC 3284 patch, checked by the device's decoder; prints size, share and the source's sha256", async () => {
    const patch = file("p1.vcdiff");
    const r = await runCliLines(["delta", "make", "--from", old, "--to", neu, "-o", patch]);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    const bytes = new Uint8Array(readFileSync(patch));
    const percent = ((100 * bytes.length) / NEW.length).toFixed(1);
    expect(r.out).toEqual([`${patch}: ${bytes.length} bytes (${percent}% of ${neu}, from ${old} sha256 ${sha256(OLD)})`]);
    expect(bytes.length).toBeLessThan(NEW.length / 10);
    // Magic, version 0, header indicator 0 (no secondary compressor, code table or app header),
    // and the first window's indicator VCD_SOURCE alone (no Adler-32).
    expect([...bytes.subarray(0, 6)]).toEqual([0xd6, 0xc3, 0xc4, 0, 0, 1]);
    expect(Buffer.compare(applyDelta(bytes, OLD), NEW)).toBe(0);
    execFileSync("xdelta3", ["-d", "-f", "-s", old, patch, file("p1.out")]);
    expect(Buffer.compare(readFileSync(file("p1.out")), NEW)).toBe(0);
  });

  it("--window sets the target bytes per window (resume points for the device)", async () => {
    const patch = file("p2.vcdiff");
    const r = await runCliLines(["delta", "make", "--from", old, "--to", neu, "-o", patch, "--window", "16384"]);
    expect(r.code, r.err.join("\n")).toBe(0);
    expect(windows(new Uint8Array(readFileSync(patch)), OLD)).toBe(Math.ceil(NEW.length / 16384));
    // Without --window: 64 KB windows, as the cloud's jobs use (a checkpoint per 64 KB on the device).
    expect(windows(new Uint8Array(readFileSync(file("p1.vcdiff"))), OLD)).toBe(Math.ceil(NEW.length / 65536));
  });

  it("diffs compressed-looking images as bytes (-D): a gzip file's patch still makes that file", async () => {
    const a = gzipSync(randomBytes(50000));
    const b = Buffer.concat([a, Buffer.from("appended")]);
    const patch = file("gz.vcdiff");
    const r = await runCliLines(["delta", "make", "--from", file("a.gz", a), "--to", file("b.gz", b), "-o", patch]);
    expect(r.code, r.err.join("\n")).toBe(0);
    expect(Buffer.compare(applyDelta(new Uint8Array(readFileSync(patch)), a), b)).toBe(0);
  });

  it("ignores the XDELTA environment variable (xdelta3 would take flags from it)", async () => {
    const patch = file("env.vcdiff");
    const r = await withEnv("XDELTA", "-S lzma", () => runCliLines(["delta", "make", "--from", old, "--to", neu, "-o", patch]));
    expect(r.code, r.err.join("\n")).toBe(0);
    expect(readFileSync(patch)[4]).toBe(0);
  });

  it("without xdelta3: one line naming the Debian package, exit 1, no patch written", async () => {
    const patch = file("none.vcdiff");
    const r = await withEnv("XS_OTA_XDELTA3", join(dir, "no-such-xdelta3"), () => runCliLines(["delta", "make", "--from", old, "--to", neu, "-o", patch]));
    expect(r.code).toBe(1);
    expect(r.err).toEqual([`error: ${join(dir, "no-such-xdelta3")} not found: install the Debian package xdelta3 (apt-get install xdelta3)`]);
    expect(() => readFileSync(patch)).toThrow();
  });

  it("xdelta3 failing, or making a patch the decoder refuses, is one line, exit 1", async () => {
    const failing = await withEnv("XS_OTA_XDELTA3", "false", () => runCliLines(["delta", "make", "--from", old, "--to", neu, "-o", file("f.vcdiff")]));
    expect(failing.code).toBe(1);
    expect(failing.err).toHaveLength(1);
    expect(failing.err[0]).toMatch(/^error: xdelta3 failed \(1\)/);
    // A stand-in that writes xdelta3's default output (lzma secondary compression).
    const script = file("fake-xdelta3.sh", new Uint8Array(Buffer.from(`#!/bin/sh\nfor last; do :; done\nexec xdelta3 -e -f -s ${old} ${neu} "$last"\n`)));
    execFileSync("chmod", ["+x", script]);
    const lzma = await withEnv("XS_OTA_XDELTA3", script, () => runCliLines(["delta", "make", "--from", old, "--to", neu, "-o", file("lzma.vcdiff")]));
    expect(lzma.code).toBe(1);
    expect(lzma.err).toHaveLength(1);
    expect(lzma.err[0]).toMatch(/^error: the device's decoder refuses xdelta3's patch: .*secondary compression .*lzma.*-S none/);
  });

  it("usage errors exit 2: a missing option, a window out of range; --help exits 0", async () => {
    const missing = await runCliLines(["delta", "make", "--from", old, "-o", file("x.vcdiff")]);
    expect(missing.code).toBe(2);
    expect(missing.err[0]).toBe("xs-ota delta make: --to is required");
    for (const w of ["100", "16777217", "64k", "-1"]) {
      const r = await runCliLines(["delta", "make", "--from", old, "--to", neu, "-o", file("x.vcdiff"), "--window", w]);
      expect(r.code, w).toBe(2);
      expect(r.err[0]).toMatch(/--window takes 16384 to 16777216 bytes|needs a value/);
    }
    const help = await runCliLines(["delta", "make", "--help"]);
    expect(help.code).toBe(0);
    expect(help.out.join("\n")).toContain("xdelta3 -e -9 -S none -A -D -n -f");
    const group = await runCliLines(["delta", "--help"]);
    expect(group.code).toBe(0);
    expect(group.out[0]).toBe("usage: xs-ota delta make --from OLD.bin --to NEW.bin -o PATCH [--window BYTES]");
    const unknown = await runCliLines(["delta", "merge"]);
    expect(unknown.code).toBe(2);
  });
});

describe("xs-ota delta apply", () => {
  const patch = file("a.vcdiff");

  it("makes NEW from OLD and the patch, and prints its size and sha256", async () => {
    execFileSync("xdelta3", ["-e", "-9", "-S", "none", "-A", "-D", "-f", "-W", "65536", "-s", old, neu, patch]);
    const out = file("applied.bin");
    const r = await runCliLines(["delta", "apply", "--from", old, patch, "-o", out]);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([`${out}: ${NEW.length} bytes, sha256 ${sha256(NEW)}`]);
    expect(Buffer.compare(readFileSync(out), NEW)).toBe(0);
  });

  it("refusals are `error: <reason>`, exit 1, and write nothing", async () => {
    const cases: [string, string, RegExp][] = [
      [file("garbage.vcdiff", new Uint8Array(randomBytes(100)).fill(7, 0, 3)), old, /not a VCDIFF patch/],
      [file("short.vcdiff", new Uint8Array(readFileSync(patch)).subarray(0, 30)), old, /truncated/],
      [patch, file("other-old.bin", OLD.subarray(0, 100000)), /made from another image/],
      [file("trailing.vcdiff", Buffer.concat([readFileSync(patch), Buffer.from([0xff])])), old, /trailing bytes after the last window/],
    ];
    for (const [p, from, reason] of cases) {
      const out = file("refused.bin");
      rmSync(out, { force: true });
      const r = await runCliLines(["delta", "apply", "--from", from, p, "-o", out]);
      expect(r.code, p).toBe(1);
      expect(r.out).toEqual([]);
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toMatch(new RegExp(`^error: ${p.replace(/[/.]/g, "\\$&")}: `));
      expect(r.err[0]).toMatch(reason);
      expect(() => readFileSync(out)).toThrow();
    }
  });

  it("a missing patch or image names the file (exit 1); a missing argument is a usage error (exit 2)", async () => {
    const missing = await runCliLines(["delta", "apply", "--from", old, file("nope.vcdiff"), "-o", file("o.bin")]);
    expect(missing.code).toBe(1);
    expect(missing.err).toEqual([`error: cannot read the patch ${file("nope.vcdiff")}: no such file`]);
    const noOld = await runCliLines(["delta", "apply", "--from", file("nope.bin"), patch, "-o", file("o.bin")]);
    expect(noOld.err).toEqual([`error: cannot read the old image ${file("nope.bin")}: no such file`]);
    const noPatch = await runCliLines(["delta", "apply", "--from", old, "-o", file("o.bin")]);
    expect(noPatch.code).toBe(2);
    expect(noPatch.err[0]).toBe("xs-ota delta apply: missing PATCH");
  });
});
