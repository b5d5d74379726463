/**
 * Builds with a real Moddable SDK ($MODDABLE, its tools built), for tests that must see what
 * Moddable's own toolchain makes of xs-ota: tsc with the manifest's settings, xsc, and xsl's
 * preload and freeze.
 *
 * - buildRunner: an x-cli-lin program (./runner/main.c) linked by xsl with the given modules and
 *   preloads, that hosts/sim/xsnap.ts's XsWorker drives like xsnap-worker.
 * - buildEsp32JsStages: the JavaScript half of an esp32 build (tsc, xsc, xsl) without ESP-IDF.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface ModdableSdk {
  /** $MODDABLE */
  root: string;
  /** Its built host tools (mcconfig, xsc, xsl). */
  bin: string;
  version: string;
}

export interface BuildRunnerOptions {
  moddable: ModdableSdk;
  /** Made if missing; reusing it keeps the compiled XS objects (a rebuild is then seconds). */
  outDir: string;
  /** Absolute paths of manifests to include, e.g. xs-ota's manifest.json. */
  manifestIncludes: string[];
  /** Extra modules: specifier -> source path without extension (.js or .ts). */
  modules: Record<string, string>;
  /** Extra specifiers for xsl to preload (and freeze) into the program. */
  preload?: string[];
  /** The machine's stack in slots (Moddable's default, as on an esp32 app, is 384). */
  stack?: number;
}

export interface RunnerBuild {
  binary: string;
  log: string;
  /** xsl's `### warning` lines: what its freeze check found mutable in preloaded modules. */
  warnings: string[];
}

export interface Esp32JsBuild {
  ok: boolean;
  log: string;
  errors: string[];
  warnings: string[];
}

export class ModdableBuildError extends Error {
  override name = "ModdableBuildError";
  constructor(
    message: string,
    readonly log: string,
    readonly errors: string[],
  ) {
    super(`${message}\n${errors.join("\n")}`);
  }
}

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const RUNNER_MAIN = fileURLToPath(new URL("./runner/main", import.meta.url));
const RUNNER_FREEZE = "xs-ota-runner/freeze";
const HOST_FOLDER: Partial<Record<NodeJS.Platform, string>> = { linux: "lin", darwin: "mac" };
/**
 * tsc writes its output even when it reports errors, so without .DELETE_ON_ERROR the next build
 * finds that output up to date and passes. And since xsl reports its warnings only when it runs,
 * both builds delete mc.xs.c first, so that it runs every time (a second or two).
 */
const MAKE_ARGS = ["--eval", ".DELETE_ON_ERROR:"];

export function moddableSdk(): ModdableSdk | undefined {
  const root = process.env.MODDABLE;
  const host = HOST_FOLDER[process.platform];
  if (!root || !host) return undefined;
  const bin = join(root, "build", "bin", host, "release");
  if (!["mcconfig", "xsc", "xsl"].every((tool) => existsSync(join(bin, tool)))) return undefined;
  return { root, bin, version: sdkVersion(root) };
}

function sdkVersion(root: string): string {
  const file = join(root, "tools", "VERSION");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  return gitDescribe(root) ?? "unknown";
}

function gitDescribe(root: string): string | undefined {
  try {
    // Synchronous: moddableSdk() decides whether a suite runs, before anything is awaited.
    return execFileSync("git", ["-C", root, "describe", "--tags", "--always"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export async function buildRunner(options: BuildRunnerOptions): Promise<RunnerBuild> {
  // The runner waits on glib's main context, as Moddable's lin platform queues its jobs there.
  if (process.platform !== "linux") throw new Error("buildRunner: x-cli-lin builds on Linux only");
  const outDir = resolve(options.outDir);
  const buildDir = join(outDir, "build");
  mkdirSync(buildDir, { recursive: true });
  const manifest = {
    // manifest_base gives the creation sizes and the tsconfig types an esp32 build uses too.
    include: ["$(MODDABLE)/examples/manifest_base.json", ...options.manifestIncludes],
    modules: {
      ...options.modules,
      "*": RUNNER_MAIN,
      [RUNNER_FREEZE]: fileURLToPath(new URL("./runner/freeze", import.meta.url)),
      // Resource.c needs the mcGetResource that only the device platforms generate.
      "~": ["$(MODULES)/files/resource/*"],
    },
    preload: [RUNNER_FREEZE, ...(options.preload ?? [])],
    // Keep everything, eval's parser included: tests send source text.
    strip: [],
    // manifest_base's 1 KiB parser buffer caps every string literal of an eval'd source (a device
    // never parses at run time: xsc compiles its modules); tests send large literals.
    creation: { parser: { buffer: 16 * 1024 * 1024 }, ...(options.stack ? { stack: options.stack } : {}) },
  };
  const manifestPath = join(outDir, "manifest.json");
  writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  const host = "lin";
  // mcconfig names the program after the manifest's folder.
  const name = basename(outDir);
  const tmpDir = join(buildDir, "tmp", host, "debug", name);
  // What `mcconfig -m` does, in two steps so that make gets .DELETE_ON_ERROR (see MAKE_ARGS).
  const generated = await run(options.moddable, join(options.moddable.bin, "mcconfig"), ["-d", "-p", "x-cli-lin", "-o", buildDir, manifestPath], outDir);
  const binary = join(buildDir, "bin", host, "debug", name);
  let log = generated.log;
  let code = generated.code;
  if (code === 0) {
    // A failed build must not leave the previous program looking like this one.
    rmSync(binary, { force: true });
    rmSync(join(tmpDir, "mc.xs.c"), { force: true });
    const built = await run(options.moddable, "make", ["-f", join(tmpDir, "makefile"), ...MAKE_ARGS], outDir);
    log += built.log;
    code = built.code;
  }
  if (code !== 0 || !existsSync(binary)) throw new ModdableBuildError(`x-cli-lin build failed (exit ${code})`, log, errorLines(log));
  return { binary, log, warnings: warningLines(log) };
}

export async function buildEsp32JsStages(options: { moddable: ModdableSdk; app: string; outDir: string }): Promise<Esp32JsBuild> {
  const outDir = resolve(options.outDir);
  const app = resolve(options.app);
  mkdirSync(outDir, { recursive: true });
  let log = "";
  const step = async (command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) => {
    const result = await run(options.moddable, command, args, cwd, env);
    log += result.log;
    return result;
  };
  const done = (ok: boolean): Esp32JsBuild => ({ ok, log, errors: errorLines(log), warnings: warningLines(log) });

  // Without -m mcconfig only writes the makefile; the wifi settings only satisfy manifest_net.
  const generated = await step(join(options.moddable.bin, "mcconfig"), ["-d", "-p", "esp32", "-o", outDir, "ssid=x", "password=y"], app);
  const makefile = join(outDir, "tmp", "esp32", "debug", basename(app), "makefile");
  if (generated.code !== 0 || !existsSync(makefile)) return done(false);

  // The makefile refuses an empty IDF_PATH, and asks git for IDF_VERSION unless given one.
  const idf = join(outDir, "no-esp-idf");
  mkdirSync(idf, { recursive: true });
  const make = ["-f", makefile, "IDF_VERSION=v6.0", ...MAKE_ARGS];
  const env = { IDF_PATH: idf };
  const dirs = await step("make", [...make, "--no-print-directory", "--eval", "xs-ota-dirs: ; @echo $(SDKCONFIG_H) && echo $(TMP_DIR)", "xs-ota-dirs"], outDir, env);
  const [sdkconfigH, tmpDir] = dirs.stdout.trim().split("\n");
  if (dirs.code !== 0 || !sdkconfigH || !tmpDir) return done(false);

  // -o: take sdkconfig.h as made, since making it is ESP-IDF's job; -k: report every module that
  // fails.
  const mcXs = join(tmpDir, "mc.xs.c");
  rmSync(mcXs, { force: true });
  const built = await step("make", [...make, "-k", "-o", sdkconfigH, mcXs], outDir, env);
  return done(built.code === 0);
}

/** Runs a tool with the SDK on PATH; stdout and stderr interleaved as they came. */
function run(sdk: ModdableSdk, command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; log: string; stdout: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        MODDABLE: sdk.root,
        // xs-ota's manifest defines it for itself; set for manifests that include "$(XS_OTA)/...".
        XS_OTA: process.env.XS_OTA ?? REPO,
        PATH: `${sdk.bin}:${process.env.PATH ?? ""}`,
        ...env,
      },
    });
    let log = "";
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      log += d.toString();
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => (log += d.toString()));
    child.on("error", fail);
    child.on("close", (code, signal) => done({ code: code ?? (signal ? 128 : 1), log, stdout }));
  });
}

function unique(lines: string[]): string[] {
  return [...new Set(lines.map((line) => line.trim()))];
}

function warningLines(log: string): string[] {
  return unique(log.split("\n").filter((line) => line.startsWith("### warning")));
}

/** tsc's `error TS`, xsc's and cc's `file:line: error:`, mcconfig's and xsl's `### ...!`, make's failed targets. */
function errorLines(log: string): string[] {
  return unique(
    log
      .split("\n")
      .filter(
        (line) =>
          /error TS\d+/.test(line) ||
          /: (fatal )?error: /.test(line) ||
          (line.startsWith("### ") && !line.startsWith("### warning") && !/^### \d+ instances/.test(line)) ||
          line.startsWith("# typescript compile failure") ||
          line.startsWith("make: *** ["),
      ),
  );
}
