/**
 * manifest.json is what a Moddable app includes to build xs-ota with mcconfig. No Moddable SDK
 * here, so these tests do what mcconfig and XS do to it (cli/manifest.ts says where in Moddable's
 * sources): read the manifests for esp32, follow their includes, match module sources to files,
 * compile the TypeScript as mcconfig's tsc would, and resolve every import the way XS does.
 */
import { afterAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import {
  MCCONFIG_TSCONFIG_DEFAULTS,
  ROOT,
  checkManifest,
  generateManifest,
  loadManifests,
  providedModules,
  xsResolve,
  type Manifest,
} from "../cli/manifest.ts";

const MANIFEST = join(ROOT, "manifest.json");
const APP = join(ROOT, "hosts/esp32/example/manifest.json");
const manifest = JSON.parse(readFileSync(MANIFEST, "utf8")) as Manifest;
const scratch: string[] = [];
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "xs-ota-manifest-"));
  scratch.push(dir);
  return dir;
}

describe("manifest.json", () => {
  it("is what npm run manifest makes of the files there now", () => {
    expect(manifest, "manifest.json is out of date: run npm run manifest").toEqual(generateManifest());
  });

  it("maps every device module as xs-ota/<path>, and only existing ones", () => {
    const { local } = providedModules(loadManifests(MANIFEST, ROOT));
    for (const [name, source] of Object.entries(manifest.modules ?? {})) {
      if (!name.startsWith("xs-ota/")) continue;
      expect(source).toBe(`$(XS_OTA)/modules/${name.slice("xs-ota/".length)}`);
      expect(local.get(name)?.map((f) => relative(ROOT, f))).toEqual([`modules/${name.slice("xs-ota/".length)}.ts`]);
    }
  });

  it("device modules and the @noble files they reach: every import resolves, every source matches a file", () => {
    const problems = checkManifest(MANIFEST).filter((p) => !p.startsWith("hosts/"));
    expect(problems).toEqual([]);
  });

  it(`esp32 host${existsSync(APP) ? " and example app" : ""}: every import resolves (imports of modules/ as "xs-ota/<path>")`, () => {
    const problems = checkManifest(existsSync(APP) ? APP : MANIFEST).filter((p) => p.startsWith("hosts/") || !p.includes(": import "));
    expect(problems).toEqual([]);
  });

  it("gives mcconfig a TypeScript compiler that rewrites .ts imports (5.7+)", () => {
    const compiler = manifest.typescript?.compiler ?? "";
    const script = compiler.replace(/^node /, "").replace("$(XS_OTA)", ROOT);
    expect(existsSync(script), compiler).toBe(true);
    const [major, minor] = ts.version.split(".").map(Number);
    expect(major > 5 || (major === 5 && minor >= 7), `TypeScript ${ts.version}`).toBe(true);
    expect(manifest.typescript?.tsconfig?.compilerOptions?.rewriteRelativeImportExtensions).toBe(true);
  });

  it("names esp32 build files that exist: an A/B partition table, the sdkconfig fragment", () => {
    const build = manifest.platforms?.esp32?.build ?? {};
    const table = readFileSync((build.PARTITIONS_FILE ?? "").replace("$(XS_OTA)", ROOT), "utf8");
    for (const name of ["otadata", "ota_0", "ota_1"]) expect(table).toMatch(new RegExp(`^${name}\\s*,`, "m"));
    // mcconfig merges $(SDKCONFIGPATH)/sdkconfig.defaults (tools/mcmanifest.js generateConfigurationRules).
    if (build.SDKCONFIGPATH) expect(existsSync(join(build.SDKCONFIGPATH.replace("$(XS_OTA)", ROOT), "sdkconfig.defaults")), "hosts/esp32/sdkconfig/sdkconfig.defaults").toBe(true);
  });
});

/**
 * mcconfig's TypeScript step for the device modules: the tsconfig tools/mcmanifest.js
 * TSConfigFile writes (its defaults, `paths` from the manifest keys, `files`, outDir the modules
 * folder, then the manifests' compilerOptions), compiled, and the output where the makefile
 * rule expects it: $(MODULES_DIR) + source path past the sources' common folder, .ts -> .js.
 */
describe("mcconfig's tsc run, redone", () => {
  const tsModules = Object.entries(manifest.modules ?? {})
    .flatMap(([name, source]) => (typeof source === "string" ? [{ name, file: join(ROOT, source.replace("$(XS_OTA)/", "") + ".ts") }] : []))
    .filter((m) => existsSync(m.file));
  const names = new Set(Object.keys(manifest.modules ?? {}));

  function redo(compilerOptions: Record<string, unknown> | undefined): { diagnostics: string[]; missing: string[]; unresolved: string[] } {
    const out = tempDir();
    const paths: Record<string, string[]> = {};
    for (const m of tsModules) paths[m.name] = [m.file.slice(0, -3)];
    const tsconfig = { compilerOptions: { ...MCCONFIG_TSCONFIG_DEFAULTS, outDir: out, paths, ...compilerOptions }, files: tsModules.map((m) => m.file) };
    writeFileSync(join(out, "tsconfig.json"), JSON.stringify(tsconfig, null, "\t"));
    const parsed = ts.parseJsonConfigFileContent(tsconfig, ts.sys, out);
    const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options });
    const emitted = program.emit();
    const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].map(
      (d) => `${d.file ? relative(ROOT, d.file.fileName) : ""} TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`,
    );

    // tools/mcmanifest.js generateModulesRules: common prefix of the sorted first and last folders.
    const folders = tsModules.map((m) => dirname(m.file)).sort();
    const first = folders[0].split("/");
    const last = folders[folders.length - 1].split("/");
    let i = 0;
    while (i < Math.min(first.length, last.length) && first[i] === last[i]) i++;
    const common = folders.length > 1 ? first.slice(0, i).join("/").length : folders[0].length;

    const missing: string[] = [];
    const unresolved: string[] = [];
    for (const m of tsModules) {
      const js = out + m.file.slice(common, -3) + ".js";
      if (!existsSync(js)) {
        missing.push(`${relative(ROOT, m.file)} -> ${js}`);
        continue;
      }
      for (const f of ts.preProcessFile(readFileSync(js, "utf8"), true, true).importedFiles) {
        const target = xsResolve(f.fileName, m.name);
        if (target === undefined || !names.has(target)) unresolved.push(`${m.name}: '${f.fileName}' -> ${target}`);
      }
    }
    return { diagnostics, missing, unresolved };
  }

  it("with manifest.json's compilerOptions: no diagnostic, output where the makefile looks, every import resolving", () => {
    expect(redo(manifest.typescript?.tsconfig?.compilerOptions)).toEqual({ diagnostics: [], missing: [], unresolved: [] });
  }, 60_000);

  it("with mcconfig's defaults alone the build would fail: .ts imports refused and kept, @noble not found", () => {
    const { diagnostics, unresolved } = redo(undefined);
    expect(diagnostics.some((d) => d.includes("TS5097"))).toBe(true); // "An import path can only end with a '.ts' extension when..."
    expect(diagnostics.some((d) => d.includes("TS2792") && d.includes("@noble/"))).toBe(true); // classic resolution
    expect(unresolved).toContain("xs-ota/agent/agent: '../errors.ts' -> xs-ota/errors.ts");
  }, 60_000);
});

describe("XS module resolution (fxFindModule)", () => {
  it("strips .js/.mjs, not .ts; takes ./ and one ../ from the importing module's name", () => {
    expect(xsResolve("../errors.js", "xs-ota/agent/agent")).toBe("xs-ota/errors");
    expect(xsResolve("../jobs/plan.js", "xs-ota/aws/jobs")).toBe("xs-ota/jobs/plan");
    expect(xsResolve("../codec/der.mjs", "xs-ota/verify/keys")).toBe("xs-ota/codec/der");
    expect(xsResolve("../errors.ts", "xs-ota/agent/agent")).toBe("xs-ota/errors.ts");
    expect(xsResolve("../errors", "xs-ota/agent/agent")).toBe("xs-ota/errors");
    expect(xsResolve("../../modules/errors.js", "xs-ota/esp32/flash")).toBe("xs-ota/../modules/errors");
    expect(xsResolve("../utils.js", "@noble/curves/abstract/weierstrass")).toBe("@noble/curves/utils");
    expect(xsResolve("@noble/hashes/sha2.js", "xs-ota/verify/noble-digest")).toBe("@noble/hashes/sha2");
    expect(xsResolve("embedded:storage/flash", "xs-ota/esp32/flash")).toBe("embedded:storage/flash");
    expect(xsResolve("a.b/c.d.js", "main")).toBe("a.b/c.d");
    expect(xsResolve("./x.js", undefined)).toBeUndefined();
    expect(xsResolve("../x.js", "main")).toBeUndefined();
  });
});

describe("the check fails when it must", () => {
  /** A synthetic xs-ota: its manifest, and modules/<name>.ts for each entry of `files`. */
  function fixture(files: Record<string, string>, extra: Partial<Manifest> = {}): string {
    const dir = tempDir();
    const modules: Record<string, string> = {};
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, "modules", name)), { recursive: true });
      writeFileSync(join(dir, "modules", `${name}.ts`), text);
      modules[`xs-ota/${name}`] = `$(XS_OTA)/modules/${name}`;
    }
    const json: Manifest = { build: { XS_OTA: "./" }, modules: { ...modules, ...extra.modules }, preload: extra.preload, platforms: extra.platforms };
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(json));
    return dir;
  }
  const check = (dir: string): string[] => checkManifest(join(dir, "manifest.json"), dir);

  it("passes a good build: relative .ts, type-only imports of anything, Moddable modules whose manifest is included", () => {
    const dir = fixture(
      {
        "agent/a": `import { b } from "../b.ts";\nimport type { Gone } from "./gone.ts";\nimport Preference from "preference";\nexport const a = (g: Gone) => [b, g, Preference];`,
        b: `export const b = 1;`,
      },
      { platforms: { esp32: { include: ["$(MODDABLE)/modules/files/preference/manifest.json"] } } },
    );
    expect(check(dir)).toEqual([]);
  });

  it("catches a module the manifest does not provide", () => {
    const dir = fixture({ a: `import { c } from "./c.ts";\nexport const a = c;` });
    expect(check(dir)).toEqual([`modules/a.ts: import './c.js' from 'xs-ota/a' resolves to 'xs-ota/c', which this build does not provide`]);
  });

  it("catches a misspelled specifier, and a Moddable module whose manifest nobody includes", () => {
    const dir = fixture({ a: `import P from "prefernce";\nimport Timer from "timer";\nexport const a = [P, Timer];` });
    expect(check(dir)).toEqual([
      `modules/a.ts: import 'prefernce' from 'xs-ota/a' resolves to 'prefernce', which this build does not provide`,
      `modules/a.ts: import 'timer' from 'xs-ota/a' resolves to 'timer', which this build does not provide (Moddable's $(MODDABLE)/examples/manifest_base.json does: include it)`,
    ]);
  });

  it("catches what Node resolves and XS does not: two ../, a bare specifier with .ts", () => {
    const dir = fixture({
      "x/y/a": `import { b } from "../../b.ts";\nimport { c } from "xs-ota/b.ts";\nexport const a = [b, c];`,
      b: `export const b = 1;\nexport const c = 2;`,
    });
    expect(check(dir)).toEqual([
      `modules/x/y/a.ts: import '../../b.js' from 'xs-ota/x/y/a' resolves to 'xs-ota/x/../b', which this build does not provide (XS takes one ../ only)`,
      `modules/x/y/a.ts: import 'xs-ota/b.ts' from 'xs-ota/x/y/a' resolves to 'xs-ota/b.ts', which this build does not provide (XS strips .js, not .ts)`,
    ]);
  });

  it("catches a source that matches no file and a preload of no module", () => {
    const dir = fixture({ a: `export const a = 1;` }, { modules: { "xs-ota/typo": "$(XS_OTA)/modules/tpyo" }, preload: ["xs-ota/a", "xs-ota/nope"] });
    expect(check(dir)).toEqual([
      `manifest.json: no file matches "$(XS_OTA)/modules/tpyo" (mcconfig: no modules match)`,
      `preload 'xs-ota/nope': no such module (xsl: module not found)`,
    ]);
  });

  it("follows an app's includes, with its XS_OTA, and its own modules' imports", () => {
    const dir = fixture({ b: `export const b = 1;` });
    const app = join(dir, "app");
    mkdirSync(app);
    writeFileSync(join(app, "main.ts"), `import { b } from "xs-ota/b";\nimport { c } from "xs-ota/c";\nexport default () => [b, c];`);
    writeFileSync(join(app, "manifest.json"), JSON.stringify({ build: { XS_OTA: "./.." }, include: ["$(XS_OTA)/manifest.json"], modules: { "*": "./main" } }));
    expect(checkManifest(join(app, "manifest.json"), dir)).toEqual([`app/main.ts: import 'xs-ota/c' from 'main' resolves to 'xs-ota/c', which this build does not provide`]);
    expect(resolve(loadManifests(join(app, "manifest.json"), "/elsewhere").env.get("XS_OTA") ?? "")).toBe(dir);
  });
});
