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
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { deviceWorkerPath, DEVICE_ENGINE_DIR } from "./paths.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const PACKAGE = dirname(createRequire(import.meta.url).resolve("@agoric/xsnap/package.json"));
const NATIVE = join(PACKAGE, "xsnap-native/xsnap");

/** A text edit that must apply exactly once, or the package changed under us. */
function edit(text: string, find: string, replace: string, what: string): string {
  const at = text.indexOf(find);
  if (at < 0 || text.indexOf(find, at + find.length) >= 0) throw new Error(`device XS build: cannot ${what} (the @agoric/xsnap sources changed)`);
  return text.slice(0, at) + replace + text.slice(at + find.length);
}

function inputsStamp(): string {
  const files = [join(HERE, "xs-ota-device.c"), fileURLToPath(import.meta.url), join(PACKAGE, "package.json")];
  return files.map((f) => `${f}:${statSync(f).mtimeMs}`).join("\n");
}

export function buildDeviceEngine(force = false): string {
  const binary = deviceWorkerPath();
  const stampFile = join(DEVICE_ENGINE_DIR, "inputs.txt");
  if (!force && existsSync(binary) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === inputsStamp()) return binary;

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
  writeFileSync(stampFile, inputsStamp());
  return binary;
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
