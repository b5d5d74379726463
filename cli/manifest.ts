/**
 * npm run manifest: rewrites manifest.json, the manifest a Moddable app includes to build xs-ota
 * with mcconfig, from the files that are there now, then checks that every import of every module
 * it provides for esp32 resolves the way mcconfig and XS resolve it (test/manifest.test.ts runs
 * the same check).
 *
 * What mcconfig and XS do with a specifier (Moddable-OpenSource/moddable):
 * - tools/mcmanifest.js, TSConfigFile: all .ts modules go through one tsc run with a generated
 *   tsconfig (module es2020, target ES2020, lib es2020, `paths` from the manifest keys) over which
 *   the manifests' "typescript.tsconfig.compilerOptions" are spread; tsc keeps specifiers as
 *   written unless rewriteRelativeImportExtensions is on, and its default module resolution for
 *   es2020 (classic) does not find @noble's package exports.
 * - xs/platforms/mc/xsHosts.c and xs/tools/xsl.c, fxFindModule: strip ".js"/".mjs" from the last
 *   segment (never ".ts"), take "./" or ONE "../" relative to the importing module's name, then
 *   match the manifest keys exactly (xs/tools/xslBase.c fxBaseScript names each module after its
 *   key; "embedded:" keys keep their prefix).
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import ts from "typescript";

export const ROOT = resolve(import.meta.dirname, "..");

/** mcmanifest.js TSConfigFile's own compilerOptions, before the manifests' are spread over them. */
export const MCCONFIG_TSCONFIG_DEFAULTS: Readonly<Record<string, unknown>> = {
  baseUrl: "./",
  forceConsistentCasingInFileNames: true,
  module: "es2020",
  lib: ["es2020"],
  sourceMap: true,
  target: "ES2020",
};

/**
 * What xs-ota's manifest adds to mcconfig's tsconfig. rewriteRelativeImportExtensions turns
 * "../errors.ts" into "../errors.js", which XS strips to a manifest key; bundler resolution finds
 * @noble's exports; ES2022 keeps Node's class-field semantics (define, not assign). Of "strict",
 * only strictNullChecks: without it tsc cannot narrow the modules' `{ ok: true } | { ok: false }`
 * unions and fails the build; the other strict checks only ever add errors, to apps too.
 */
export const TSCONFIG_OPTIONS: Readonly<Record<string, unknown>> = {
  rewriteRelativeImportExtensions: true,
  moduleResolution: "bundler",
  strictNullChecks: true,
  target: "ES2022",
  lib: ["ES2022"],
  skipLibCheck: true,
};

export const STACK_SLOTS = 1024;
/**
 * rewriteRelativeImportExtensions needs TypeScript 5.7; whatever `tsc` is on PATH may be older,
 * and where typescript lies depends on whether xs-ota is a checkout or an app's dependency:
 * bin/tsc.js finds it by Node's resolution and says what to install when it is missing or old.
 */
export const TS_COMPILER = "node $(XS_OTA)/bin/tsc.js";

let compilerOptions: ts.CompilerOptions | undefined;

/** mcconfig's compilerOptions for xs-ota's .ts modules, as the TypeScript API takes them. */
export function mcconfigCompilerOptions(): ts.CompilerOptions {
  if (!compilerOptions) {
    const { options, errors } = ts.convertCompilerOptionsFromJson({ ...MCCONFIG_TSCONFIG_DEFAULTS, ...TSCONFIG_OPTIONS }, ROOT);
    if (errors.length) throw new Error(ts.flattenDiagnosticMessageText(errors[0].messageText, "\n"));
    compilerOptions = options;
  }
  return compilerOptions;
}

/**
 * Modules Moddable provides on esp32, by the manifest an app includes to get them; checked
 * against Moddable-OpenSource/moddable. `includes` are the manifests that one includes itself.
 */
export const MODDABLE_ESP32: Readonly<Record<string, { provides: readonly string[]; includes?: readonly string[] }>> = {
  // platforms.esp32: $(MODULES)/base/{debug,time,timer}/*; also defines MODULES, BUILD, COMMODETTO.
  // manifest_base also maps $(MODULES)/files/resource/* and preloads "Resource".
  "$(MODDABLE)/examples/manifest_base.json": { provides: ["Resource", "debug", "instrumentation", "time", "timer"] },
  // platforms.esp32: network/socket/*, net/net, sntp/*, wifi/*, "setup/network".
  "$(MODDABLE)/examples/manifest_net.json": { provides: ["net", "setup/network", "sntp", "socket", "wifi"] },
  // platforms.esp32: ./flash (flash.js) + ./esp32/flash (flash.c).
  "$(MODDABLE)/modules/files/flash/manifest.json": { provides: ["flash"] },
  // platforms.esp32: files/preference/* (preference.js) + files/preference/esp32/* (NVS).
  "$(MODDABLE)/modules/files/preference/manifest.json": { provides: ["preference"] },
  // ./* : crypt.js (Digest, native sha1/sha256/md5...) + ./kcl/*.
  "$(MODDABLE)/modules/crypt/digest/manifest.json": { provides: ["crypt"] },
  "$(MODDABLE)/modules/network/websocket/manifest.json": { provides: ["logical", "websocket"], includes: ["$(MODDABLE)/modules/crypt/digest/manifest.json"] },
  "$(MODDABLE)/modules/network/mqtt/manifest.json": { provides: ["mqtt", "mqttserver"], includes: ["$(MODDABLE)/modules/network/websocket/manifest.json"] },
  "$(MODDABLE)/modules/network/http/manifest.json": { provides: ["http"], includes: ["$(MODDABLE)/examples/manifest_net.json"] },
  // crypt/etc/{ber,curve,dsa,ecdsa,gcm,hmac,pkcs*,rng,rsa,x509} (+ crypt/bin, digest, base64...).
  "$(MODDABLE)/modules/crypt/tls_common.json": {
    provides: ["ber", "curve", "dsa", "ecdsa", "gcm", "hmac", "pkcs1", "pkcs1_5", "pkcs8", "rng", "rsa", "x509"],
    includes: ["$(MODDABLE)/modules/crypt/digest/manifest.json"],
  },
  // securesocket (crypt/securesocket/*), ssl/session_original.
  "$(MODDABLE)/modules/crypt/tls.json": { provides: ["securesocket", "ssl/session"], includes: ["$(MODDABLE)/modules/crypt/tls_common.json"] },
  // ssl/session_419, for the ECMA-419 TLS socket.
  "$(MODDABLE)/modules/crypt/tls_419.json": { provides: ["ssl/session"], includes: ["$(MODDABLE)/modules/crypt/tls_common.json"] },
  "$(MODDABLE)/examples/io/tcp/tlssocket/manifest.json": { provides: ["embedded:io/socket/tcp/tls"], includes: ["$(MODDABLE)/modules/crypt/tls_419.json"] },
  // platforms.esp32: "embedded:storage/flash": ./flash-esp32.
  "$(MODDABLE)/modules/io/flash/esp32/manifest.json": { provides: ["embedded:storage/flash"] },
  // platforms.esp32 includes ./esp32/manifest.json: "embedded:storage/key-value": ./storage-esp32.
  "$(MODDABLE)/modules/io/storage/manifest.json": { provides: ["embedded:storage/key-value"] },
  // platforms.esp32 includes ./manifests/esp32/manifest.json (ECMA-419 io, lwip sockets, "system").
  "$(MODDABLE)/modules/io/manifest.json": {
    provides: ["embedded:io/digital", "embedded:io/socket/listener", "embedded:io/socket/tcp", "embedded:io/socket/udp", "embedded:provider/builtin", "system"],
    includes: ["$(MODDABLE)/examples/manifest_base.json", "$(MODDABLE)/examples/manifest_net.json"],
  },
  "$(MODDABLE)/examples/io/tcp/httpclient/manifest_httpclient.json": { provides: ["embedded:network/http/client"], includes: ["$(MODDABLE)/modules/io/manifest.json"] },
  // "embedded:network/dns/resolver/udp": ./dns; includes $(MODDABLE)/modules/io/manifest.json.
  "$(MODDABLE)/examples/io/udp/dns/manifest_dns.json": { provides: ["embedded:network/dns/resolver/udp"], includes: ["$(MODDABLE)/modules/io/manifest.json"] },
  "$(MODDABLE)/examples/io/tcp/mqttclient/manifest_mqttclient.json": {
    provides: ["embedded:network/mqtt/client"],
    includes: ["$(MODDABLE)/modules/io/manifest.json", "$(MODDABLE)/examples/io/udp/dns/manifest_dns.json"],
  },
};

/** tools/mcconfig.js run() generates "mc/config" for every microcontroller build. */
const MCCONFIG_GENERATED = ["mc/config"];

/** The Moddable manifest that provides `specifier` on esp32, if one in MODDABLE_ESP32 does. */
export function moddableManifestFor(specifier: string): string | undefined {
  return Object.keys(MODDABLE_ESP32).find((m) => MODDABLE_ESP32[m].provides.includes(specifier));
}

/**
 * The module name XS looks up for `specifier` imported by the module named `referrer`, or
 * undefined where XS gives up (a relative specifier with no referrer to resolve against).
 */
export function xsResolve(specifier: string, referrer: string | undefined): string | undefined {
  const dot = specifier.startsWith("./") ? 1 : specifier.startsWith("../") ? 2 : 0;
  let name = specifier;
  const lastDot = name.lastIndexOf(".");
  if (lastDot > name.lastIndexOf("/")) {
    const extension = name.slice(lastDot);
    if (extension === ".js" || extension === ".mjs") name = name.slice(0, lastDot);
  }
  if (!dot) return name;
  if (referrer === undefined) return undefined;
  let buffer = `/${referrer}`;
  if (dot === 2) {
    buffer = buffer.slice(0, buffer.lastIndexOf("/"));
    if (!buffer.includes("/")) return undefined;
  }
  buffer = buffer.slice(0, buffer.lastIndexOf("/")) + name.slice(dot);
  return buffer.slice(1);
}

/**
 * The specifiers a module asks XS for when it runs: for .ts, what tsc leaves (type-only imports
 * erased, relative .ts rewritten to .js); for .js, its own. Static, re-exports and import().
 */
export function runtimeImports(file: string, text = readFileSync(file, "utf8")): string[] {
  const key = `${file}\0${text}`;
  let found = importsSeen.get(key);
  if (!found) {
    const js = file.endsWith(".ts") ? ts.transpileModule(text, { compilerOptions: mcconfigCompilerOptions(), fileName: file }).outputText : text;
    found = ts.preProcessFile(js, true, true).importedFiles.map((f) => f.fileName);
    importsSeen.set(key, found);
  }
  return found;
}

/** Transpiling is the slow part, and the same files are asked about many times in one run. */
const importsSeen = new Map<string, string[]>();

const posix = (path: string): string => path.split(sep).join("/");

function tsSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? tsSources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []))
    .sort();
}

/** modules/<path>.ts -> "xs-ota/<path>": every device module, by specifier. */
export function deviceModules(root = ROOT): Record<string, string> {
  const modules: Record<string, string> = {};
  for (const file of tsSources(join(root, "modules"))) {
    const path = posix(relative(join(root, "modules"), file)).replace(/\.ts$/, "");
    modules[`xs-ota/${path}`] = `$(XS_OTA)/modules/${path}`;
  }
  return modules;
}

const HOST_EXTENSIONS = [".ts", ".js", ".c", ".cc", ".cpp", ".h"];

/** Base names of the module files in `dir` (mcconfig maps a name to every file that has it). */
function moduleNames(dir: string): string[] {
  const names = new Set<string>();
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith(".") || !statSync(join(dir, name)).isFile()) continue;
    if (/\.d\.ts$|\.(test|spec)\.[tj]s$/.test(name)) continue;
    const extension = HOST_EXTENSIONS.find((e) => name.endsWith(e));
    if (extension) names.add(name.slice(0, -extension.length));
  }
  return [...names];
}

/**
 * hosts/esp32/<name>.{ts,js,c,...} -> "xs-ota/esp32/<name>" (mcconfig takes every file of that
 * base name: a native module's .js and .c come in together); a folder hosts/esp32/<dir> holding
 * one module (a native one, say) -> "xs-ota/esp32/<dir>", holding several -> "xs-ota/esp32/<dir>/<name>".
 * Not example/ (the app) or sdkconfig/, tests, or .d.ts (declarations for Node's type check).
 */
export function esp32HostModules(root = ROOT): Record<string, string> {
  const dir = join(root, "hosts/esp32");
  const modules: Record<string, string> = {};
  if (!existsSync(dir)) return modules;
  for (const name of moduleNames(dir)) modules[`xs-ota/esp32/${name}`] = `$(XS_OTA)/hosts/esp32/${name}`;
  for (const sub of readdirSync(dir).sort()) {
    if (sub === "example" || sub === "sdkconfig" || sub.startsWith(".") || !statSync(join(dir, sub)).isDirectory()) continue;
    const names = moduleNames(join(dir, sub));
    for (const name of names) modules[names.length === 1 ? `xs-ota/esp32/${sub}` : `xs-ota/esp32/${sub}/${name}`] = `$(XS_OTA)/hosts/esp32/${sub}/${name}`;
  }
  return Object.fromEntries(Object.entries(modules).sort(([a], [b]) => a.localeCompare(b)));
}

/** The JavaScript/TypeScript file behind a "$(XS_OTA)/..." manifest source, if there is one. */
function scriptFile(root: string, source: string): string | undefined {
  const base = join(root, source.replace("$(XS_OTA)/", ""));
  return [".ts", ".js"].map((e) => base + e).find((f) => existsSync(f));
}

/**
 * Every @noble file the given modules reach at run time, keyed as XS names them: the specifier
 * without ".js" ("@noble/hashes/sha2"), and for noble's own relative imports the key resolved as
 * XS resolves it, which must land on the file Node resolves.
 */
function nobleModules(root: string, modules: Record<string, string>): Record<string, string> {
  const found = new Map<string, string>();
  const queue: Array<{ key: string; file: string }> = [];
  const add = (key: string, file: string, from: string): void => {
    const known = found.get(key);
    if (known && known !== file) throw new Error(`${key}: ${from} reaches both ${known} and ${file}`);
    if (!known) {
      found.set(key, file);
      queue.push({ key, file });
    }
  };
  for (const [key, source] of Object.entries(modules)) {
    const file = scriptFile(root, source);
    if (!file) continue;
    for (const s of runtimeImports(file)) if (s.startsWith("@noble/")) add(xsResolve(s, key) ?? s, createRequire(file).resolve(s), key);
  }
  while (queue.length) {
    const { key, file } = queue.shift() as { key: string; file: string };
    for (const s of runtimeImports(file)) {
      const name = xsResolve(s, key);
      if (s.startsWith(".") && name) add(name, resolve(dirname(file), s), key);
      else if (s.startsWith("@noble/") && name) add(name, createRequire(file).resolve(s), key);
      else throw new Error(`${posix(relative(root, file))}: '${s}' is neither relative nor @noble/*`);
    }
  }
  const result: Record<string, string> = {};
  for (const key of [...found.keys()].sort()) result[key] = `$(XS_OTA)/${posix(relative(root, found.get(key) as string)).replace(/\.js$/, "")}`;
  return result;
}

/** Runtime import closure of `key` among `modules` (names only; what preloading `key` preloads). */
function importClosure(root: string, modules: Record<string, string>, key: string): Set<string> {
  const seen = new Set<string>();
  const walk = (k: string): void => {
    if (seen.has(k)) return;
    seen.add(k);
    const source = modules[k];
    const file = source === undefined ? undefined : scriptFile(root, source);
    if (!file) return;
    for (const s of runtimeImports(file)) {
      const name = xsResolve(s, k);
      if (name) walk(name);
    }
  };
  walk(key);
  return seen;
}

type Sources = string | { source: string } | Array<string | { source: string }>;

/** The parts of a manifest (or of one of its "platforms" entries) this tool reads or writes. */
export interface ManifestBlock {
  build?: Record<string, string>;
  include?: string | string[];
  modules?: Record<string, Sources>;
  preload?: string | string[];
  error?: string;
  warning?: string;
  typescript?: { compiler?: string; tsconfig?: { compilerOptions?: Record<string, unknown> } };
  creation?: { stack?: number };
}

export interface Manifest extends ManifestBlock {
  "//"?: string;
  platforms?: Record<string, ManifestBlock>;
}

const NOTE =
  "xs-ota for Moddable apps (mcconfig). Add \"include\": [\"$(XS_OTA)/manifest.json\"] to your app's manifest and define XS_OTA, " +
  "either as an environment variable or as \"build\": {\"XS_OTA\": \"./path/to/xs-ota\"} in your manifest (mcconfig makes a build value " +
  "absolute only when it starts with \"./\"); this manifest then redefines XS_OTA as its own folder. From an app's node_modules/xs-ota, " +
  "@noble/* come bundled in its own node_modules and the TypeScript compiler mcconfig runs (5.7 or later, before 7) " +
  "is the app's (a peer dependency; bin/tsc.js finds it); in a checkout, run npm install first. " +
  "Device modules import as \"xs-ota/<path of modules/ without .ts>\"; on esp32 the host as \"xs-ota/esp32/<name>\", with the Moddable " +
  "manifests it needs, hosts/esp32/sdkconfig as SDKCONFIGPATH and partitions/esp32-4mb.csv as PARTITIONS_FILE (to use your own, include " +
  "after this one a manifest whose platforms.esp32.build sets them). It sets the XS stack to 1024 slots (creation.stack): the agent's deepest path overflows Moddable's default 384. Generated by npm run manifest (cli/manifest.ts): edit that, not this.";

/** manifest.json as the files there now make it. */
export function generateManifest(root = ROOT): Manifest {
  const device = deviceModules(root);
  const host = esp32HostModules(root);
  const noble = nobleModules(root, { ...device, ...host });
  const all = { ...device, ...noble, ...host };
  const reachesNoble = (key: string): boolean => [...importClosure(root, all, key)].some((k) => k.startsWith("@noble/"));

  const moddable = new Set<string>();
  for (const [key, source] of Object.entries(host)) {
    const file = scriptFile(root, source);
    if (!file) continue;
    for (const s of runtimeImports(file)) {
      const manifest = moddableManifestFor(xsResolve(s, key) ?? s);
      if (manifest) moddable.add(manifest);
    }
  }
  const base = "$(MODDABLE)/examples/manifest_base.json";
  // Moddable's manifests use the variables manifest_base.json defines ($(MODULES), $(BUILD)...).
  const include = moddable.size ? [base, ...[...moddable].filter((m) => m !== base).sort()] : [];

  const esp32: ManifestBlock = {};
  const build: Record<string, string> = {};
  if (existsSync(join(root, "hosts/esp32/sdkconfig"))) build.SDKCONFIGPATH = "$(XS_OTA)/hosts/esp32/sdkconfig";
  if (existsSync(join(root, "partitions/esp32-4mb.csv"))) build.PARTITIONS_FILE = "$(XS_OTA)/partitions/esp32-4mb.csv";
  if (Object.keys(build).length) esp32.build = build;
  if (include.length) esp32.include = include;
  if (Object.keys(host).length) esp32.modules = host;

  return {
    "//": NOTE,
    build: { XS_OTA: "./" },
    modules: { ...device, ...noble },
    // Preloading runs a module at build time (xsl) and preloads what it imports: @noble's
    // top-level code has not been run under xsl, so modules that pull it in load at run time.
    preload: Object.keys(device).filter((k) => !reachesNoble(k)),
    typescript: { compiler: TS_COMPILER, tsconfig: { compilerOptions: { ...TSCONFIG_OPTIONS } } },
    // XS stack slots: Moddable's default 384 overflows on the agent's deepest path (an HTTP
    // download starting from a job message), measured on Moddable's XS by npm run test:moddable:
    // 512 fails, 768 completes the esp32 host's updates, under a test harness whose own frames
    // (the simulator's event pump, the bridge) stand in for Moddable's. 1024 keeps a margin: an
    // overflow restarts the device, and it would take the same path again at every boot.
    creation: { stack: STACK_SLOTS },
    platforms: {
      esp32,
      "...": { warning: "xs-ota: no host for this platform (hosts/esp32 only): the portable modules are included, the ports are yours to provide" },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading manifests as mcconfig does, for esp32, and checking that every import resolves.

interface Parsed {
  path: string;
  dir: string;
  json: Manifest;
  platform: ManifestBlock | undefined;
}

export interface Loaded {
  /** Manifests read from disk, in mcconfig's merge order (included ones before their includer). */
  manifests: Parsed[];
  /** $(MODDABLE)/... manifests included, directly or by one another (not read: taken from MODDABLE_ESP32). */
  moddable: Set<string>;
  env: Map<string, string>;
  problems: string[];
}

/** tools/mcmanifest.js matchPlatform, for a build without subplatform. */
function matchPlatform(platforms: Record<string, ManifestBlock> | undefined, platform: string): ManifestBlock | undefined {
  if (!platforms) return undefined;
  for (const [name, block] of Object.entries(platforms)) {
    if (name.endsWith("/*") ? platform.startsWith(name.slice(0, -1)) : name === platform) return block;
  }
  return platforms["..."];
}

const list = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/**
 * Reads `entry` and what it includes, as mcconfig does for `platform`: "build" variables set in
 * parse order ($(XS_OTA), a value starting with "./" made absolute), includes depth-first.
 * $(MODDABLE) stays literal: those manifests are not here; MODDABLE_ESP32 says what they provide.
 */
export function loadManifests(entry: string, xsOta: string, platform = "esp32"): Loaded {
  // What manifest_base.json defines, which Moddable's own manifests rely on.
  const env = new Map<string, string>([["XS_OTA", xsOta], ["MODULES", "$(MODDABLE)/modules"], ["BUILD", "$(MODDABLE)/build"]]);
  const loaded: Loaded = { manifests: [], moddable: new Set(), env, problems: [] };
  const seen = new Set<string>();
  const variable = (value: string, where: string): string =>
    value.replace(/\$\(([^)]+)\)/g, (whole, name: string) => {
      if (name === "MODDABLE") return whole;
      const found = env.get(name);
      if (found === undefined) loaded.problems.push(`${where}: $(${name}) is not defined`);
      return found ?? whole;
    });
  const addModdable = (path: string): void => {
    if (loaded.moddable.has(path)) return;
    loaded.moddable.add(path);
    for (const inner of MODDABLE_ESP32[path]?.includes ?? []) addModdable(inner);
  };
  const parse = (path: string): void => {
    if (seen.has(path)) return;
    seen.add(path);
    const where = posix(relative(xsOta, path)) || path;
    if (!existsSync(path)) {
      loaded.problems.push(`${where}: manifest not found`);
      return;
    }
    const json = JSON.parse(readFileSync(path, "utf8")) as Manifest;
    const dir = dirname(path);
    const block = matchPlatform(json.platforms, platform);
    for (const b of [json, block]) {
      for (const [name, raw] of Object.entries(b?.build ?? {})) {
        const value = variable(raw, where);
        env.set(name, value.startsWith("./") ? resolve(dir, value) : value);
      }
    }
    for (const include of [...list(json.include), ...list(block?.include)]) {
      const target = variable(include, where);
      if (target.startsWith("$(MODDABLE)/")) addModdable(target);
      else parse(resolve(dir, target));
    }
    loaded.manifests.push({ path, dir, json, platform: block });
  };
  parse(resolve(entry));
  return loaded;
}

export interface Provided {
  /** Module name -> its files (.ts, .js, .c...), for the modules local manifests map. */
  local: Map<string, string[]>;
  /** Module names Moddable (or mcconfig itself) provides to this build. */
  moddable: Set<string>;
  preload: string[];
}

/** What the loaded manifests provide for the platform, matched against the files as mcmanifest.js's ModulesRule does. */
export function providedModules(loaded: Loaded): Provided {
  const local = new Map<string, string[]>();
  const moddableByName = new Set<string>();
  const preload: string[] = [];
  for (const { path, dir, json, platform } of loaded.manifests) {
    const where = posix(relative(loaded.env.get("XS_OTA") ?? dir, path));
    for (const block of [json, platform]) {
      preload.push(...list(block?.preload));
      for (const [key, value] of Object.entries(block?.modules ?? {})) {
        if (key === "~") continue;
        for (const item of list(value)) {
          if (typeof item !== "string") continue;
          const substituted = item.replace(/\$\(([^)]+)\)/g, (w, n: string) => loaded.env.get(n) ?? w);
          if (substituted.includes("$(MODDABLE)")) {
            // A Moddable module mapped by name: what it provides is known only when not a wildcard.
            const stem = substituted.slice(substituted.lastIndexOf("/") + 1);
            if (!key.includes("*")) moddableByName.add(key);
            else if (key === "*" && !stem.includes("*")) moddableByName.add(stem);
            continue;
          }
          const source = resolve(dir, substituted);
          const folder = dirname(source);
          const last = source.slice(folder.length + 1);
          const star = last.lastIndexOf("*");
          const prefix = star >= 0 ? last.slice(0, star) : last;
          let count = 0;
          for (const name of existsSync(folder) ? readdirSync(folder) : []) {
            const file = join(folder, name);
            if (name.startsWith(".") || !statSync(file).isFile()) continue;
            const dot = name.lastIndexOf(".");
            const base = dot > 0 ? name.slice(0, dot) : name;
            if (star >= 0 ? !base.startsWith(prefix) : base !== prefix) continue;
            const stem = star >= 0 ? base.slice(prefix.length) : prefix;
            const target = key === "*" ? stem : key.endsWith("*") ? key.slice(0, -1) + stem : key;
            local.set(target, [...(local.get(target) ?? []), file]);
            count++;
          }
          if (!count) loaded.problems.push(`${where}: no file matches "${item}" (mcconfig: no modules match)`);
        }
      }
    }
  }
  const moddable = new Set<string>([...MCCONFIG_GENERATED, ...moddableByName]);
  for (const m of loaded.moddable) for (const p of MODDABLE_ESP32[m]?.provides ?? []) moddable.add(p);
  return { local, moddable, preload };
}

/** The file a module runs from: its .ts (compiled by mcconfig's tsc) or .js; .d.ts only types. */
function scriptOf(files: readonly string[]): string | undefined {
  return files.find((f) => (f.endsWith(".ts") && !f.endsWith(".d.ts")) || f.endsWith(".js"));
}

/**
 * Problems mcconfig or XS would meet with `entry` (a manifest path) on esp32: imports that resolve
 * to no module of the build, modules whose source matches no file, preloads of unknown modules,
 * variables never defined. Empty when the build links and every import finds its module.
 */
export function checkManifest(entry: string, xsOta = ROOT): string[] {
  const loaded = loadManifests(entry, xsOta);
  const provided = providedModules(loaded);
  const problems = [...loaded.problems];
  const has = (name: string): boolean => provided.moddable.has(name) || (provided.local.has(name) && scriptOf(provided.local.get(name) ?? []) !== undefined);
  for (const [name, files] of [...provided.local].sort(([a], [b]) => a.localeCompare(b))) {
    const file = scriptOf(files);
    if (!file) continue;
    const where = posix(relative(xsOta, file));
    for (const specifier of runtimeImports(file)) {
      const target = xsResolve(specifier, name);
      if (target !== undefined && has(target)) continue;
      let why = target === undefined ? "cannot be resolved" : `resolves to '${target}', which this build does not provide`;
      const owner = target === undefined ? undefined : moddableManifestFor(target);
      if (owner) why += ` (Moddable's ${owner} does: include it)`;
      else if (target?.endsWith(".ts")) why += " (XS strips .js, not .ts)";
      else if (target?.includes("..")) why += " (XS takes one ../ only)";
      problems.push(`${where}: import '${specifier}' from '${name}' ${why}`);
    }
  }
  for (const name of provided.preload) {
    if (!name.includes("*") && !has(name)) problems.push(`preload '${name}': no such module (xsl: module not found)`);
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const file = join(ROOT, "manifest.json");
  const manifest = generateManifest();
  writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
  const host = Object.keys(manifest.platforms?.esp32?.modules ?? {}).length;
  console.log(`manifest.json: ${Object.keys(manifest.modules ?? {}).length} modules, ${host} esp32 host modules`);
  const app = join(ROOT, "hosts/esp32/example/manifest.json");
  const problems = checkManifest(existsSync(app) ? app : file);
  for (const p of problems) console.error(`  ${p}`);
  if (problems.length) {
    console.error(`${problems.length} problem(s) mcconfig or XS would meet (see above)`);
    process.exitCode = 1;
  }
}
