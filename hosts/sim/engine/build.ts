/**
 * Builds xs-ota's device-faithful XS engine at install (npm's postinstall): the XS C sources that
 * @agoric/xsnap ships, compiled as its xsnap-worker is (same netstring protocol), but configured
 * as Moddable configures a device build:
 * - strings indexed by code point (mxCESU8 left undefined: "\u{10151}".length === 1);
 * - no RegExp property escapes, no String.prototype.normalize, and -0 from integer arithmetic
 *   as a device computes it (mxRegExpUnicodePropertyEscapes, mxStringNormalize, mxMinusZero are
 *   left undefined: xsre.c and friends test them with #ifdef, so they must not be set to 0);
 * - the globals of a Moddable app only, and preload emulated (xs-ota-device.c).
 *
 * The package's own files are read, never changed: patched copies go to OUT.
 *   node bin/run.js hosts/sim/engine/build.ts [--force]
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { deviceWorkerPath, DEVICE_ENGINE_DIR } from "./paths.ts";

const HERE = dirname(fileURLToPath(import.meta.url));

/** Thrown when the engine cannot be built here (its sources or a compiler are missing): what to install. */
export class EngineUnavailable extends Error {
  override name = "EngineUnavailable";
}

/** @agoric/xsnap's folder (a dependency, but an install may have left it out). */
function xsnapPackage(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve("@agoric/xsnap/package.json"));
  } catch {
    throw new EngineUnavailable(
      "the simulator's XS engine is built from @agoric/xsnap's C sources, which is not installed: run `npm install @agoric/xsnap`, with make and a C compiler on PATH",
    );
  }
}

/** Why the engine cannot be built here, or undefined: no make, no cc, no @agoric/xsnap. */
export function cannotBuildEngine(): string | undefined {
  for (const tool of ["make", "cc"]) if (spawnSync(tool, ["--version"], { stdio: "ignore" }).error) return `no ${tool} on PATH`;
  try {
    xsnapPackage();
  } catch {
    return "@agoric/xsnap is not installed";
  }
  return undefined;
}

/** A text edit that must apply exactly once, or the package changed under us. */
function edit(text: string, find: string, replace: string, what: string): string {
  const at = text.indexOf(find);
  if (at < 0 || text.indexOf(find, at + find.length) >= 0) throw new Error(`device XS build: cannot ${what} (the @agoric/xsnap sources changed)`);
  return text.slice(0, at) + replace + text.slice(at + find.length);
}

function inputsStamp(PACKAGE: string): string {
  const files = [join(HERE, "xs-ota-device.c"), fileURLToPath(import.meta.url), join(PACKAGE, "package.json")];
  return files.map((f) => `${f}:${statSync(f).mtimeMs}`).join("\n");
}

export function buildDeviceEngine(force = false): string {
  const binary = deviceWorkerPath();
  const stampFile = join(DEVICE_ENGINE_DIR, "inputs.txt");
  const PACKAGE = xsnapPackage();
  const NATIVE = join(PACKAGE, "xsnap-native/xsnap");
  if (!force && existsSync(binary) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === inputsStamp(PACKAGE)) return binary;

  const sources = join(DEVICE_ENGINE_DIR, "sources");
  const makefiles = join(DEVICE_ENGINE_DIR, "makefiles/lin");
  mkdirSync(sources, { recursive: true });
  mkdirSync(makefiles, { recursive: true });
  for (const name of readdirSync(join(NATIVE, "sources"))) copyFileSync(join(NATIVE, "sources", name), join(sources, name));
  copyFileSync(join(HERE, "xs-ota-device.c"), join(sources, "xs-ota-device.c"));

  const platform = readFileSync(join(NATIVE, "sources/xsnapPlatform.h"), "utf8");
  writeFileSync(join(sources, "xsnapPlatform.h"), edit(platform, "#define mxCESU8 1\n", "/* mxCESU8: a device indexes strings by code point */\n", "leave mxCESU8 undefined"));

  let worker = readFileSync(join(NATIVE, "sources/xsnap-worker.c"), "utf8");
  worker = edit(worker, "void xsBuildAgent(xsMachine* machine)\n{", "extern void fxBuildDeviceAgent(xsMachine* the);\nstatic void fxBuildXsnapAgent(xsMachine* machine);\nvoid xsBuildAgent(xsMachine* machine)\n{\n\tfxBuildXsnapAgent(machine);\n\tfxBuildDeviceAgent(machine);\n}\nstatic void fxBuildXsnapAgent(xsMachine* machine)\n{", "add the device globals");
  writeFileSync(join(sources, "xsnap-worker.c"), worker);

  let make = readFileSync(join(NATIVE, "makefiles/lin/xsnap-worker.mk"), "utf8");
  make = edit(make, "NAME = xsnap-worker", "NAME = xsnap-device", "rename the program");
  for (const option of ["mxRegExpUnicodePropertyEscapes", "mxStringNormalize", "mxMinusZero"]) make = edit(make, `\t-D${option}=1 \\\n`, "", `leave ${option} undefined`);
  make = edit(make, "\t$(TMP_DIR)/xsnap-worker.o\n", "\t$(TMP_DIR)/xsnap-worker.o \\\n\t$(TMP_DIR)/xs-ota-device.o\n", "add xs-ota-device.c");
  writeFileSync(join(makefiles, "xsnap-device.mk"), make);

  const run = spawnSync(
    "make",
    [`MODDABLE=${join(PACKAGE, "moddable")}`, "GOAL=release", `XSNAP_VERSION=xs-ota-device`, `CC=cc "-D__has_builtin(x)=1"`, "-f", "xsnap-device.mk"],
    { cwd: makefiles, encoding: "utf8" },
  );
  if (run.status !== 0 || !existsSync(binary)) throw new Error(`device XS build failed:\n${run.stdout}${run.stderr}`);
  writeFileSync(stampFile, inputsStamp(PACKAGE));
  return binary;
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * The engine's path, built first if it is missing (the package's postinstall skips the build
 * when it cannot, or when XS_OTA_SKIP_ENGINE=1, so a device-only app never compiles XS): the
 * simulator calls this on first use. One process builds; others that need it meanwhile wait.
 * An engine that is present is used as it is (rebuild a stale one with build.ts --force).
 */
export function ensureDeviceEngine(): string {
  const binary = deviceWorkerPath();
  if (existsSync(binary)) return binary;
  mkdirSync(DEVICE_ENGINE_DIR, { recursive: true });
  const lock = join(DEVICE_ENGINE_DIR, "building.lock");
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (existsSync(binary)) return binary;
      if (Date.now() > deadline || Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 10 * 60_000) rmSync(lock, { recursive: true, force: true });
      else sleep(250);
    }
  }
  try {
    if (existsSync(binary)) return binary;
    xsnapPackage(); // what to install, when it is missing
    const why = cannotBuildEngine();
    if (why) throw new EngineUnavailable(`the simulator's XS engine is missing and cannot be built here (${why}): install make and a C compiler (e.g. apt-get install make gcc), then run the simulator again`);
    process.stderr.write("xs-ota: building the simulator's XS engine (once; about a minute)...\n");
    return buildDeviceEngine();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  try {
    const binary = buildDeviceEngine(process.argv.includes("--force"));
    console.log(`device-faithful XS: ${binary} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
}
