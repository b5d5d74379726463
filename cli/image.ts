/**
 * xs-ota image pack [--target esp32] --version V [--secure-version N] [--project NAME] -o OUT.bin BUNDLE.js
 * xs-ota image pack --target w800 [--xz] --version V --payload FILE -o OUT.img
 * xs-ota image pack --target nuvoton --version V -o OUT.bin BUNDLE.js
 * xs-ota image info FILE
 *
 * `pack` wraps an app's JavaScript bundle in the ESP32 app image layout the simulator boots
 * (modules/esp-idf/image.ts: header, app descriptor, the bundle as payload, checksum and
 * appended SHA-256). `info` checks a file the way the bootloader checks a slot: verifyImage over
 * an in-memory NOR flash holding the file's bytes (the rest of the last 4 KB block erased, 0xFF).
 * `--target w800` packs the payload as a W800 image (modules/w800/pack.ts; with --xz, compressed
 * inside an outer header, cli/w800-image.ts), with partitions/w800-2mb.csv's layout; `info`
 * recognises a W800 image by its magic and prints its header fields. `--target nuvoton` makes
 * the simulator's raw app for the Nuvoton board (hosts/sim/raw-app.ts): a real Mbed binary has
 * no header, so its version rides in the program's first line.
 * Exit codes: 0 done / valid, 1 invalid image or I/O error, 2 bad arguments.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { readInput } from "./files.ts";
import type { Io } from "./main.ts";
import { printUsageError, runGroup, withArgsSync, type Args, type CommandSpec, type Group } from "./args.ts";
import { OtaError, isOtaError } from "../modules/errors.ts";
import { HEADER_SIZE, IMAGE_PREFIX_SIZE, SEGMENT_HEADER_SIZE, packImage, verifyImage } from "../modules/esp-idf/image.ts";
import { NorFlash } from "../hosts/sim/nor-flash.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { packW800Image } from "../modules/w800/pack.ts";
import { isW800Image, packW800Xz, shippedW800Layout, w800Info } from "./w800-image.ts";
import { rawAppImage, rawAppVersion } from "../hosts/sim/raw-app.ts";
import { utf8Decode } from "../modules/codec/utf8.ts";

const PACK: CommandSpec = {
  name: "image pack",
  usage: [
    "image pack [--target esp32] --version V [--secure-version N] [--project NAME] -o OUT.bin BUNDLE.js",
    "image pack --target w800 [--xz] --version V --payload FILE -o OUT.img",
    "image pack --target nuvoton --version V -o OUT.bin BUNDLE.js",
  ],
  about: ["Wraps an app's JavaScript bundle (xs-ota bundle) in a firmware image for a board."],
  options: {
    target: { type: "string", value: "BOARD", description: "esp32 (default), w800 or nuvoton" },
    version: { type: "string", value: "V", description: "the firmware's version" },
    "secure-version": { type: "string", value: "N", description: "ESP32: the anti-rollback secure version, 0 to 4294967295" },
    project: { type: "string", value: "NAME", description: "ESP32: the app descriptor's project name" },
    payload: { type: "string", value: "FILE", description: "W800: the payload" },
    xz: { type: "boolean", description: "W800: compress the payload inside an outer header" },
    out: { type: "string", short: "o", value: "OUT", description: "the image to write" },
  },
  positionals: { min: 0, max: 8, name: "BUNDLE.js" },
};

const INFO: CommandSpec = {
  name: "image info",
  usage: ["image info FILE"],
  about: ["Checks an image the way the bootloader checks a slot, and prints its version and layout."],
  options: {},
  positionals: { min: 0, max: 8, name: "FILE" },
};

const GROUP: Group = {
  name: "image",
  subcommands: {
    pack: { spec: PACK, run: (args, io) => withArgsSync(PACK, args, io, (a) => pack(a, io)) },
    info: { spec: INFO, run: (args, io) => withArgsSync(INFO, args, io, (a) => info(a, io)) },
  },
};
const BLOCK = 4096;

const sha256 = () => nodeDigests.create("sha256");
const hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The options as the pack functions read them (short names), and the positional arguments. */
function valuesOf(a: Args): { values: Record<string, string>; rest: string[] } {
  const values: Record<string, string> = {};
  const names: Record<string, string> = { version: "version", "secure-version": "secure", project: "project", out: "out", target: "target", payload: "payload" };
  for (const [option, name] of Object.entries(names)) {
    const v = a.string(option);
    if (v !== undefined) values[name] = v;
  }
  return { values, rest: [...a.positionals] };
}

function usageError(io: Io, spec: CommandSpec, message: string): number {
  return printUsageError(spec, io, message);
}

function pack(a: Args, io: Io): number {
  const xz = a.flag("xz");
  const o = valuesOf(a);
  const target = o.values.target ?? "esp32";
  if (target === "w800") return packW800(o.values, o.rest, xz, io);
  if (target !== "esp32" && target !== "nuvoton") return usageError(io, PACK, `--target is esp32, w800 or nuvoton, not '${target}'`);
  if (xz) return usageError(io, PACK, "--xz is for --target w800");
  if (target === "nuvoton") return packRaw(o.values, o.rest, io);
  if (o.values.payload !== undefined) o.rest.push(o.values.payload);
  const { version, secure, project, out } = o.values;
  if (version === undefined) return usageError(io, PACK, "--version is required");
  if (out === undefined) return usageError(io, PACK, "-o OUT is required");
  if (o.rest.length !== 1) return usageError(io, PACK, o.rest.length ? "one bundle file, please" : "the bundle file is missing");
  let secureVersion = 0;
  if (secure !== undefined) {
    if (!/^(0|[1-9][0-9]*)$/.test(secure) || Number(secure) > 0xffffffff) {
      return usageError(io, PACK, `--secure-version must be an integer from 0 to 4294967295, got '${secure}'`);
    }
    secureVersion = Number(secure);
  }
  const payload = readInput(o.rest[0], "the bundle");
  let image: Uint8Array;
  try {
    image = packImage({ version, secureVersion, projectName: project, payload, sha256 });
  } catch (e) {
    if (isOtaError(e, "bad-argument")) return usageError(io, PACK, e.message);
    throw e;
  }
  return written(io, out, image, [`image: ${out}`, `size: ${image.length} bytes (bundle ${payload.length} bytes)`, `version: ${version}`, `secure version: ${secureVersion}`]);
}

function packRaw(values: Record<string, string>, rest: string[], io: Io): number {
  const { version, out } = values;
  if (values.secure !== undefined || values.project !== undefined) return usageError(io, PACK, "a raw app has no secure version or project name");
  if (values.payload !== undefined) rest.push(values.payload);
  if (version === undefined) return usageError(io, PACK, "--version is required");
  if (out === undefined) return usageError(io, PACK, "-o OUT is required");
  if (rest.length !== 1) return usageError(io, PACK, rest.length ? "one bundle file, please" : "the bundle file is missing");
  const bundle = readInput(rest[0], "the bundle");
  let image: Uint8Array;
  try {
    image = rawAppImage(version, utf8Decode(bundle));
  } catch (e) {
    if (isOtaError(e, "bad-argument") || isOtaError(e, "malformed")) return usageError(io, PACK, e.message);
    throw e;
  }
  return written(io, out, image, [`image: ${out} (raw app for the Nuvoton board)`, `size: ${image.length} bytes`, `version: ${version}`]);
}

/** Writes a packed image and says what it is; 1 when the file cannot be written. */
function written(io: Io, out: string, image: Uint8Array, lines: string[]): number {
  try {
    writeFileSync(out, image);
  } catch (e) {
    io.err(`error: ${(e as Error).message}`);
    return 1;
  }
  for (const line of lines) io.out(line);
  io.out(`sha256: ${hex(image)}`);
  return 0;
}

function packW800(values: Record<string, string>, rest: string[], xz: boolean, io: Io): number {
  const { version, out, payload } = values;
  if (values.secure !== undefined || values.project !== undefined) return usageError(io, PACK, "a W800 image has no secure version or project name");
  if (version === undefined) return usageError(io, PACK, "--version is required");
  if (out === undefined) return usageError(io, PACK, "-o OUT is required");
  if (payload === undefined || rest.length) return usageError(io, PACK, payload === undefined ? "--payload FILE is required" : "the payload goes after --payload");
  const body = readInput(payload, "the payload");
  let image: Uint8Array;
  try {
    const layout = shippedW800Layout();
    image = xz ? packW800Xz({ version, body, layout }) : packW800Image({ version, body, layout, digests: nodeDigests });
  } catch (e) {
    if (isOtaError(e, "bad-argument") || isOtaError(e, "image-too-large")) return usageError(io, PACK, e.message);
    throw e;
  }
  return written(io, out, image, [`image: ${out}`, `size: ${image.length} bytes (payload ${body.length} bytes${xz ? ", xz" : ""})`, `version: ${version}`]);
}

function info(a: Args, io: Io): number {
  const o = valuesOf(a);
  if (o.rest.length !== 1) return usageError(io, INFO, o.rest.length ? "one image file, please" : "the image file is missing");
  const bytes = readInput(o.rest[0], "the image");
  if (isW800Image(bytes)) return w800Info(bytes, io);
  const raw = rawAppVersion(bytes);
  if (raw !== undefined) {
    io.out(`format: raw app (the simulator's stand-in for an Mbed binary; no header, a raw binary's bootloader checks nothing in it)`);
    io.out(`version: ${raw} (its first line)`);
    io.out(`length: ${bytes.length} bytes`);
    io.out(`sha256: ${hex(bytes)}`);
    return 0;
  }
  if (bytes.length < IMAGE_PREFIX_SIZE) {
    io.out(`invalid: truncated: an image starts with ${IMAGE_PREFIX_SIZE} bytes of header and descriptor, the file has ${bytes.length}`);
    return 1;
  }
  const size = Math.max(BLOCK, Math.ceil(bytes.length / BLOCK) * BLOCK);
  const data = new Uint8Array(size).fill(0xff);
  data.set(bytes);
  const flash = new NorFlash({ size, data });
  try {
    const v = verifyImage(flash, sha256);
    if (v.length > bytes.length) throw new OtaError("image-invalid", `the image needs ${v.length} bytes, the file has ${bytes.length}`);
    io.out(`version: ${v.desc.version}`);
    io.out(`secure version: ${v.desc.secureVersion}`);
    io.out(`project: ${v.desc.projectName}`);
    io.out(`built: ${v.desc.date} ${v.desc.time} (${v.desc.idfVersion})`);
    io.out(`segments: ${v.segments.length} (${v.segments.map(([at, n]) => `${n} bytes at 0x${at.toString(16)}`).join(", ")})`);
    io.out(`length: ${v.length} bytes${bytes.length > v.length ? ` (${bytes.length - v.length} trailing bytes in the file)` : ""}`);
    io.out(`hash: ${v.header.hashAppended ? "sha256 appended, ok" : "none appended (checksum ok)"}`);
    io.out(`sha256: ${hex(bytes.subarray(0, v.length))}`);
    return 0;
  } catch (e) {
    if (isOtaError(e, "image-invalid")) {
      const short = truncation(bytes);
      io.out(`invalid: ${short ? `truncated: ${short} (the bootloader says: ${e.message})` : e.message}`);
      return 1;
    }
    io.err(`error: ${(e as Error).message}`);
    return 1;
  }
}

/**
 * When the segments the header declares run past the end of the file, says so: the flash the
 * file is checked in is padded with erased bytes, so the bootloader's own reason can be about them.
 */
function truncation(bytes: Uint8Array): string | undefined {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let offset = HEADER_SIZE;
  for (let i = 0; i < bytes[1] && i < 16; i++) {
    if (offset + SEGMENT_HEADER_SIZE > bytes.length) return `the file has ${bytes.length} bytes and ends before segment ${i}'s header`;
    const length = v.getUint32(offset + 4, true);
    offset += SEGMENT_HEADER_SIZE + length;
    if (offset > bytes.length) return `the file has ${bytes.length} bytes, segment ${i} ends at ${offset}`;
  }
  return undefined;
}

export function imageCommand(args: string[], io: Io): number | Promise<number> {
  return runGroup(GROUP, args, io);
}
