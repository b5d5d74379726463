/**
 * Patches for delta updates, made by Debian's xdelta3 (not by hand) and checked by the device's
 * own decoder (modules/delta) before anyone gets them: `xs-ota delta make` and the cloud's
 * `deltaFrom` both come here.
 *
 * XDELTA3_FLAGS keep xdelta3 3.0.11 to plain RFC 3284: `-S none` (its default secondary
 * compressor is LZMA, VCD_DECOMPRESS: a device has no decoder for it), `-A` (no application
 * header: file names), `-D` (without it xdelta3 decompresses gzip/bzip2/xz inputs and diffs what
 * is inside, a patch that does not rebuild an XZ W800 image), `-n` (no Adler-32: VCD_ADLER32 is
 * xdelta3's own bit, and the device checks the image's SHA-256 and signature instead), `-9` its
 * best matching, `-f` overwrite. Jobs use windows of 64 KB (`-W`), so that each window ends on
 * a flash block and the device records its progress there: one StateStore write per 64 KB.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isOtaError } from "../modules/errors.ts";
import { VcdiffApplier, type ByteReader } from "../modules/delta/vcdiff.ts";

export const XDELTA3_FLAGS: readonly string[] = ["-e", "-9", "-S", "none", "-A", "-D", "-n", "-f"];
/** xdelta3's own limits for -W. */
export const MIN_WINDOW = 16 * 1024;
export const MAX_WINDOW = 16 * 1024 * 1024;
/** Target bytes per VCDIFF window in jobs: a multiple of every erase block the layouts have (4 KB). */
export const DELTA_WINDOW = 64 * 1024;

/** xdelta3 is missing or failed, or its patch is not one the device decodes into the new image. */
export class DeltaToolError extends Error {}

/** The xdelta3 arguments for a patch from `from` to `to`. */
export function xdelta3Args(from: string, to: string, out: string, window?: number): string[] {
  return [...XDELTA3_FLAGS, ...(window !== undefined ? ["-W", String(window)] : []), "-s", from, to, out];
}

/** The xdelta3 binary: XS_OTA_XDELTA3 when set, else the one on PATH. */
const xdelta3Binary = () => process.env.XS_OTA_XDELTA3 || "xdelta3";

function runXdelta3(args: string[]): Promise<void> {
  // xdelta3 adds the XDELTA environment variable's words to its arguments: not here.
  const { XDELTA: _ignored, ...env } = process.env;
  return new Promise((resolve, reject) => {
    execFile(xdelta3Binary(), args, { env, maxBuffer: 1 << 20 }, (error, _stdout, stderr) => {
      if (!error) return resolve();
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        return reject(new DeltaToolError(`${xdelta3Binary()} not found: install the Debian package xdelta3 (apt-get install xdelta3)`));
      }
      const lines = String(stderr).split("\n").map((l) => l.trim()).filter((l) => l && !/WARNING/.test(l));
      reject(new DeltaToolError(`xdelta3 failed (${error.code ?? error.signal ?? "?"}): ${lines.at(-1) ?? error.message}`));
    });
  });
}

/** The patch that turns `from` into `to`, checked by applying it with the device's decoder. */
export async function makeDelta(from: Uint8Array, to: Uint8Array, window: number | undefined = DELTA_WINDOW): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), "xs-ota-delta-"));
  let patch: Uint8Array;
  try {
    const [a, b, p] = ["from.bin", "to.bin", "patch.vcdiff"].map((n) => join(dir, n));
    writeFileSync(a, from);
    writeFileSync(b, to);
    await runXdelta3(xdelta3Args(a, b, p, window));
    patch = new Uint8Array(readFileSync(p));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  let check: Uint8Array;
  try {
    check = applyDelta(patch, from, to.length);
  } catch (e) {
    if (!isOtaError(e)) throw e;
    throw new DeltaToolError(`the device's decoder refuses xdelta3's patch: ${e.message}`);
  }
  if (Buffer.compare(check, to) !== 0) throw new DeltaToolError("xdelta3's patch, applied by the device's decoder, does not make the new image");
  return patch;
}

/** A ByteReader over bytes in memory (a copy per read, as Flash.read gives). */
function memoryReader(bytes: Uint8Array): ByteReader {
  return { read: (length, offset) => Uint8Array.prototype.slice.call(bytes, offset, offset + length).buffer };
}

/** Applies `patch` to `source` with the device's decoder; throws its OtaError when the patch is refused. */
export function applyDelta(patch: Uint8Array, source: Uint8Array, targetSize?: number): Uint8Array {
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
