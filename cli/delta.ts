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
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { readInput } from "./files.ts";
import type { Io } from "./main.ts";
import { runGroup, withArgs, withArgsSync, type Args, type CommandSpec, type Group } from "./args.ts";
import { isOtaError } from "../modules/errors.ts";
import { DELTA_WINDOW, DeltaToolError, MAX_WINDOW, MIN_WINDOW, XDELTA3_FLAGS, applyDelta, makeDelta } from "../cloud/delta.ts";

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
      description: `target bytes per window, ${MIN_WINDOW} to ${MAX_WINDOW} (xdelta3 -W, default ${DELTA_WINDOW / 1024} KB, as jobs use); a device records its progress at every window that ends on a flash block`,
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
  let patch: Uint8Array;
  try {
    patch = await makeDelta(old, target, window);
  } catch (e) {
    if (!(e instanceof DeltaToolError)) throw e;
    io.err(`error: ${e.message}`);
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
    result = applyDelta(patch, old);
  } catch (e) {
    if (!isOtaError(e)) throw e;
    io.err(`error: ${patchFile}: ${e.message}`);
    return 1;
  }
  writeFileSync(out, result);
  io.out(`${out}: ${result.length} bytes, sha256 ${sha256(result)}`);
  return 0;
}
