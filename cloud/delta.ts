/**
 * Patches for delta updates, made by Debian's xdelta3 (not by hand): VCDIFF as RFC 3284 defines
 * it, which the device's decoder (modules/delta) reads. XDELTA3_FLAGS keep xdelta3 3.0.11 to
 * the standard format: `-S none` (its default secondary compressor is LZMA, VCD_DECOMPRESS: a
 * device has no decoder for it), `-A` (no application header: file names), `-D` (without it
 * xdelta3 decompresses gzip/bzip2/xz inputs and diffs what is inside, which would not rebuild an
 * XZ W800 image), `-n` (no Adler-32: VCD_ADLER32 is xdelta3's own extension, and the device
 * checks the image's SHA-256 and signature instead), `-9` its best matching. Jobs use windows of
 * 64 KB (`-W`), so that each window ends on a flash block and the device records its progress
 * there: one StateStore write per 64 KB.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const XDELTA3_FLAGS: readonly string[] = ["-e", "-9", "-S", "none", "-A", "-D", "-n", "-f"];
/** Target bytes per VCDIFF window in jobs: a multiple of every erase block the layouts have (4 KB). */
export const DELTA_WINDOW = 64 * 1024;

export class DeltaToolError extends Error {}

/** The patch that turns `from` into `to`. Throws DeltaToolError when xdelta3 is missing or fails. */
export function makeDelta(from: Uint8Array, to: Uint8Array, window = DELTA_WINDOW): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "xs-ota-delta-"));
  try {
    const [a, b, p] = ["from.bin", "to.bin", "patch.vcdiff"].map((n) => join(dir, n));
    writeFileSync(a, from);
    writeFileSync(b, to);
    try {
      execFileSync("xdelta3", [...XDELTA3_FLAGS, "-W", String(window), "-s", a, b, p], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, XDELTA: "" } });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
      if (err.code === "ENOENT") throw new DeltaToolError("xdelta3 is not installed: patches are made by it (Debian: apt install xdelta3)");
      throw new DeltaToolError(`xdelta3 failed: ${err.stderr?.toString().trim() || err.message}`);
    }
    return new Uint8Array(readFileSync(p));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
