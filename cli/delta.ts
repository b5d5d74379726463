/**
 * xs-ota delta make --from OLD.bin --to NEW.bin -o PATCH [--window BYTES]
 * xs-ota delta apply --from OLD.bin PATCH -o NEW.bin
 *
 * `make` runs Debian's xdelta3 with the flags that give plain RFC 3284 (XDELTA3_FLAGS), then
 * applies the patch with the device's decoder (modules/delta) and compares the result with
 * NEW before it writes the patch, so a patch that leaves this command is one a device decodes.
 * `apply` is that decoder on the desktop. Exit codes: 0 done, 1 a file or patch problem, 2 bad
 * arguments.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InputError, readInput } from "./files.ts";
import type { Io } from "./main.ts";
import { runGroup, withArgs, withArgsSync, type Args, type CommandSpec, type Group } from "./args.ts";
import { isOtaError } from "../modules/errors.ts";
import { VcdiffApplier, type ByteReader } from "../modules/delta/vcdiff.ts";

/**
 * What xdelta3 3.0.11 needs to write plain RFC 3284: -S none (its default secondary compressor
 * is lzma, VCD_DECOMPRESS), -A (no application header: file names), -D (without it xdelta3
 * decompresses gzip/bzip2/xz inputs and diffs what is inside, a patch that does not make NEW),
 * -n (no Adler-32 in the windows: VCD_ADLER32 is xdelta3's own bit, and the device checks the
 * image's SHA-256 and signature instead). -9 is its best compression; -f overwrites.
 */
export const XDELTA3_FLAGS: readonly string[] = ["-e", "-9", "-S", "none", "-A", "-D", "-n", "-f"];
/** xdelta3's own limits for -W. */
export const MIN_WINDOW = 16 * 1024;
export const MAX_WINDOW = 16 * 1024 * 1024;

/** The xdelta3 arguments `delta make` uses. */
export function xdelta3Args(from: string, to: string, out: string, window?: number): string[] {
  return [...XDELTA3_FLAGS, ...(window !== undefined ? ["-W", String(window)] : []), "-s", from, to, out];
}

/** The xdelta3 binary: XS_OTA_XDELTA3 when set, else the one on PATH. */
const xdelta3Binary = () => process.env.XS_OTA_XDELTA3 || "xdelta3";

const MAKE: CommandSpec = {
  name: "delta make",
  usage: ["delta make --from OLD.bin --to NEW.bin -o PATCH [--window BYTES]"],
  about: [
    "Makes a VCDIFF (RFC 3284) patch that turns OLD into NEW, with xdelta3 (Debian package xdelta3),",
    "and checks it by applying it with the device's decoder (modules/delta) before writing it.",
    `xdelta3 runs as: xdelta3 ${XDELTA3_FLAGS.join(" ")} [-W BYTES] -s OLD NEW PATCH (XS_OTA_XDELTA3 names another binary).`,
  ],
  options: {
    from: { type: "string", value: "OLD.bin", required: true, description: "the image the device runs" },
    to: { type: "string", value: "NEW.bin", required: true, description: "the image it is to run" },
    out: { type: "string", short: "o", value: "PATCH", required: true, description: "where to write the patch" },
    window: {
      type: "string",
      value: "BYTES",
      description: `target bytes per window, ${MIN_WINDOW} to ${MAX_WINDOW} (xdelta3 -W, default 8 MB); a device can resume at every window boundary`,
    },
  },
};

const APPLY: CommandSpec = {
  name: "delta apply",
  usage: ["delta apply --from OLD.bin PATCH -o NEW.bin"],
  about: ["Applies a VCDIFF patch to OLD with the device's decoder (modules/delta) and prints the result's size and SHA-256."],
  options: {
    from: { type: "string", value: "OLD.bin", required: true, description: "the image the patch was made from" },
    out: { type: "string", short: "o", value: "NEW.bin", required: true, description: "where to write the result" },
  },
  positionals: { min: 1, max: 1, name: "PATCH" },
};

const GROUP: Group = {
  name: "delta",
  subcommands: {
    make: { spec: MAKE, run: (args, io) => withArgs(MAKE, args, io, (a) => make(a, io)) },
    apply: { spec: APPLY, run: (args, io) => withArgsSync(APPLY, args, io, (a) => apply(a, io)) },
  },
};

export function deltaCommand(args: string[], io: Io): number | Promise<number> {
  return runGroup(GROUP, args, io);
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** A ByteReader over bytes in memory (a copy per read, as Flash.read gives). */
function memoryReader(bytes: Uint8Array): ByteReader {
  return { read: (length, offset) => Uint8Array.prototype.slice.call(bytes, offset, offset + length).buffer };
}

/** Applies `patch` to `source` with the device's decoder; throws its OtaError when the patch is refused. */
export function applyPatch(patch: Uint8Array, source: Uint8Array, targetSize?: number): Uint8Array {
  let out = new Uint8Array(targetSize ?? Math.max(4096, source.length));
  let length = 0;
  const applier = new VcdiffApplier({
    patch: memoryReader(patch),
    patchSize: patch.length,
    source: memoryReader(source),
    sourceSize: source.length,
    target: { read: (n, offset) => out.slice(offset, Math.min(offset + n, length)).buffer },
    write: (bytes) => {
      if (length + bytes.length > out.length) {
        const bigger = new Uint8Array(Math.max(out.length * 2, length + bytes.length));
        bigger.set(out.subarray(0, length));
        out = bigger;
      }
      out.set(bytes, length);
      length += bytes.length;
    },
    chunk: 64 * 1024,
    ...(targetSize !== undefined ? { targetSize } : {}),
  });
  while (!applier.step(1 << 20));
  return out.slice(0, length);
}

function runXdelta3(args: string[]): Promise<void> {
  // xdelta3 adds the XDELTA environment variable's words to its arguments: not here.
  const { XDELTA: _ignored, ...env } = process.env;
  return new Promise((resolve, reject) => {
    execFile(xdelta3Binary(), args, { env, maxBuffer: 1 << 20 }, (error, _stdout, stderr) => {
      if (!error) return resolve();
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        return reject(new InputError(`${xdelta3Binary()} not found: install the Debian package xdelta3 (apt-get install xdelta3)`));
      }
      const lines = String(stderr).split("\n").map((l) => l.trim()).filter((l) => l && !/WARNING/.test(l));
      reject(new InputError(`xdelta3 failed (${error.code ?? error.signal ?? "?"}): ${lines.at(-1) ?? error.message}`));
    });
  });
}

function windowOf(a: Args): number | undefined {
  const text = a.string("window");
  if (text === undefined) return undefined;
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(n >= MIN_WINDOW && n <= MAX_WINDOW)) a.fail(`--window takes ${MIN_WINDOW} to ${MAX_WINDOW} bytes, got '${text}'`);
  return n;
}

async function make(a: Args, io: Io): Promise<number> {
  const window = windowOf(a);
  const from = a.string("from") ?? "";
  const to = a.string("to") ?? "";
  const out = a.string("out") ?? "";
  const old = readInput(from, "the old image");
  const target = readInput(to, "the new image");
  const dir = mkdtempSync(join(tmpdir(), "xs-ota-delta-"));
  let patch: Uint8Array;
  try {
    const made = join(dir, "patch.vcdiff");
    await runXdelta3(xdelta3Args(from, to, made, window));
    patch = new Uint8Array(readFileSync(made));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  let check: Uint8Array;
  try {
    check = applyPatch(patch, old, target.length);
  } catch (e) {
    if (!isOtaError(e)) throw e;
    io.err(`error: the device's decoder refuses xdelta3's patch: ${e.message}`);
    return 1;
  }
  if (Buffer.compare(check, target) !== 0) {
    io.err(`error: xdelta3's patch applied by the device's decoder does not make ${to}`);
    return 1;
  }
  writeFileSync(out, patch);
  const percent = (100 * patch.length) / target.length;
  io.out(`${out}: ${patch.length} bytes (${percent.toFixed(percent < 1 ? 2 : 1)}% of ${to}, from ${from} sha256 ${sha256(old)})`);
  return 0;
}

function apply(a: Args, io: Io): number {
  const from = a.string("from") ?? "";
  const out = a.string("out") ?? "";
  const patchFile = a.positionals[0] ?? "";
  const old = readInput(from, "the old image");
  const patch = readInput(patchFile, "the patch");
  let result: Uint8Array;
  try {
    result = applyPatch(patch, old);
  } catch (e) {
    if (!isOtaError(e)) throw e;
    io.err(`error: ${patchFile}: ${e.message}`);
    return 1;
  }
  writeFileSync(out, result);
  io.out(`${out}: ${result.length} bytes, sha256 ${sha256(result)}`);
  return 0;
}
