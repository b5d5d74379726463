/**
 * Bundles TypeScript for the XS engine: rollup resolves modules (including @noble/*), esbuild
 * strips types and lowers what this XS build cannot run (class static fields that use their own
 * class throw "not initialized yet"). The result is one classic script.
 *
 * Imports of `xs-ota/<path>` resolve as they do on a device through manifest.json: to
 * modules/<path>; `xs-ota/sim/<path>` is the simulator host's side of its bridge (hosts/sim/xs).
 * So an app's source is the same for the simulator and for mcconfig, except for its host import.
 *
 * Preload as on a device: the modules manifest.json preloads run first, then the engine freezes
 * the machine as Moddable's linker does (xsnap.preload(), hosts/sim/engine), then the rest of
 * the program runs. Rollup keeps module execution order, so a preloaded module that the app
 * uses is evaluated, and frozen, before the app's own code.
 */
import { readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { rollup, type Plugin, type RollupLog } from "rollup";
import esbuild from "rollup-plugin-esbuild";
import { nodeResolve } from "@rollup/plugin-node-resolve";

const cache = new Map<string, Promise<string>>();
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface BundleOptions {
  /** Shorter output (esbuild's minifier): what a firmware image should carry. */
  minify?: boolean;
  /**
   * Module specifiers resolved to files instead, e.g. a platform's modules ("flash", "timer",
   * "embedded:...") to stand-ins, so code written for that platform runs on the XS test engine.
   */
  aliases?: Record<string, string>;
  /** Run manifest.json's preloads first and freeze them (default); false for a plain script. */
  preload?: boolean;
}

/** Bundles `entrySource` (a module's text; imports are absolute paths or xs-ota/...) into a script. */
export function bundleForXs(entrySource: string, options: BundleOptions = {}): Promise<string> {
  const key = `${options.preload === false ? "nopreload:" : ""}${options.minify ? "min:" : ""}${options.aliases ? `${JSON.stringify(options.aliases)}:` : ""}${entrySource}`;
  let found = cache.get(key);
  if (!found) {
    found = build(entrySource, options);
    cache.set(key, found);
  }
  return found;
}

/** Bundles the module at `path` (an app's entry: .ts or .js) into a script. */
export function bundleFile(path: string, options: BundleOptions = {}): Promise<string> {
  return bundleForXs(`import ${JSON.stringify(path)};`, options);
}

/** The files of the modules manifest.json preloads. */
function preloadedFiles(): string[] {
  const manifest = JSON.parse(readFileSync(`${ROOT}manifest.json`, "utf8")) as { preload: string[] };
  return manifest.preload.map((key) => `${ROOT}modules/${key.slice("xs-ota/".length)}.ts`);
}

const PRELOADS = "\0xs-preloads";
const FREEZE = "\0xs-freeze";

/** `xs-ota/sim/x` -> hosts/sim/xs/x.ts, `xs-ota/x` -> modules/x.ts. */
const xsOtaPaths: Plugin = {
  name: "xs-ota-paths",
  resolveId(id) {
    if (!id.startsWith("xs-ota/")) return null;
    const rest = id.slice("xs-ota/".length);
    const base = rest.startsWith("sim/") ? `${ROOT}hosts/sim/xs/${rest.slice(4)}` : `${ROOT}modules/${rest}`;
    for (const candidate of [base, `${base}.ts`, `${base}/index.ts`]) if (statSync(candidate, { throwIfNoEntry: false })?.isFile()) return candidate;
    return null;
  },
};

/** Node-style resolution (@noble/* included) and esbuild for XS. */
function compile(minify: boolean): Plugin[] {
  return [
    nodeResolve({ extensions: [".ts", ".js"] }),
    // exclude nothing: @noble/curves itself has `static BASE = new Point(...)`.
    esbuild({ target: "es2022", supported: { "class-static-field": false }, loaders: { ".ts": "ts" }, exclude: [], minify }),
  ];
}

// An import rollup cannot resolve would fail on XS at load: refuse it here, with who imports it.
const onwarn = (w: RollupLog, warn: (w: RollupLog) => void): void => {
  if (w.code === "UNRESOLVED_IMPORT") throw new Error(`cannot resolve '${w.exporter ?? w.id}'${w.id ? ` (imported by ${w.id})` : ""}`);
  if (w.code !== "CIRCULAR_DEPENDENCY") warn(w);
};

async function build(entrySource: string, options: BundleOptions): Promise<string> {
  const preload = options.preload !== false;
  const sources: Record<string, string> = {
    "\0xs-entry": preload ? `import ${JSON.stringify(PRELOADS)};\nimport ${JSON.stringify(FREEZE)};\n${entrySource}` : entrySource,
    [PRELOADS]: preloadedFiles().map((file) => `import ${JSON.stringify(file)};\n`).join(""),
    [FREEZE]: "xsnap.preload();\n",
  };
  const virtual: Plugin = {
    name: "xs-entry",
    resolveId: (id) => (Object.hasOwn(sources, id) ? id : null),
    load: (id) => (Object.hasOwn(sources, id) ? sources[id] : null),
  };
  const aliases = options.aliases ?? {};
  const aliased: Plugin = {
    name: "xs-aliases",
    resolveId: (id) => (Object.hasOwn(aliases, id) ? aliases[id] : null),
  };
  const bundle = await rollup({
    input: "\0xs-entry",
    // A device runs every statement of every module it loads: a call marked /* @__PURE__ */
    // that nothing uses still runs there (e.g. @noble/curves/nist.js building FROST helpers).
    treeshake: { annotations: false },
    plugins: [virtual, aliased, xsOtaPaths, ...compile(options.minify ?? false)],
    onwarn,
  });
  const { output } = await bundle.generate({ format: "iife", name: "__xsEntry" });
  await bundle.close();
  return output[0].code;
}

/** One file of bundleModules' output: its name and what it exports. */
export interface BundledModule {
  fileName: string;
  exports: string[];
}

/**
 * Bundles code that is not the device's own into ES modules for a Moddable program (mcconfig
 * compiles each with xsc): every entry of `entries` (name -> module text) becomes `name.js` in
 * `outDir`, code shared between entries goes into chunks they import relatively, and whatever
 * `external` maps (modules/, the host, Moddable's modules) stays an import of the module
 * specifier it returns, for the manifest to provide.
 */
export async function bundleModules(entries: Record<string, string>, outDir: string, external: (id: string, importer: string | undefined) => string | undefined): Promise<BundledModule[]> {
  const prefix = "\0xs-module:";
  const outside: Plugin = {
    name: "xs-external",
    async resolveId(id, importer) {
      if (id.startsWith(prefix)) return id;
      const direct = external(id, importer);
      if (direct !== undefined) return { id: direct, external: true };
      const resolved = await this.resolve(id, importer, { skipSelf: true });
      const mapped = resolved && !resolved.external ? external(resolved.id, importer) : undefined;
      return mapped === undefined ? resolved : { id: mapped, external: true };
    },
    load: (id) => (id.startsWith(prefix) ? entries[id.slice(prefix.length)] : null),
  };
  const bundle = await rollup({
    input: Object.fromEntries(Object.keys(entries).map((name) => [name, prefix + name])),
    treeshake: { annotations: false },
    plugins: [outside, ...compile(false)],
    onwarn,
  });
  const { output } = await bundle.write({ dir: outDir, format: "es", entryFileNames: "[name].js", chunkFileNames: "chunk-[hash].js" });
  await bundle.close();
  return output.flatMap((o) => (o.type === "chunk" ? [{ fileName: o.fileName, exports: o.exports }] : []));
}
