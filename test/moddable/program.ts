/**
 * The test program for Moddable's own XS: an x-cli-lin build (./mcconfig.ts buildRunner) whose
 * device code is xs-ota's manifest.json as an app gets it (modules/ and @noble as modules, the
 * manifest's preloads linked and frozen by xsl) plus the esp32 host's modules, and whose test
 * code is bundled here into ES modules:
 * - `xs-ota-test/suite-<name>`: each contract suite of test/contract, ready for the [moddable]
 *   cases of test/contract/vitest.ts;
 * - `xs-ota-test/esp32-passes`, `esp32-fails`: the esp32 host's test firmware;
 * - the Moddable modules the host imports ("embedded:storage/flash", "preference", ...), served
 *   by the stand-ins of test/moddable/fakes, as on the device-faithful engine.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { bundleModules } from "../../hosts/sim/bundle.ts";
import { suiteEntry, suiteModule } from "../xs/suite-entry.ts";
import { MODDABLE_FAKES, MODDABLE_GLOBALS } from "./aliases.ts";
import { buildRunner, type ModdableSdk, type RunnerBuild } from "./mcconfig.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CONTRACTS = join(ROOT, "test/contract");
const APPS = join(ROOT, "test/moddable/apps");

/** The firmware payload that starts a test app on the program (`passes` or `fails`). */
export function esp32AppPayload(app: "passes" | "fails"): string {
  return `import("xs-ota-test/esp32-${app}");\n`;
}

const safe = (key: string) => key.replace(/[^a-zA-Z0-9]+/g, "-");

/** Where a file the test code imports lives on the program: a module key, or undefined to bundle it. */
function deviceModule(id: string): string | undefined {
  if (Object.hasOwn(MODDABLE_FAKES, id)) return id;
  if (id.startsWith("xs-ota/")) return id;
  if (!id.startsWith("/")) return undefined;
  const rel = relative(ROOT, id);
  if (rel.startsWith("modules/")) return `xs-ota/${rel.slice("modules/".length).replace(/\.ts$/, "")}`;
  if (rel.startsWith("hosts/esp32/")) return `xs-ota/esp32/${rel.slice("hosts/esp32/".length).replace(/\.ts$/, "")}`;
  const noble = /node_modules\/(@noble\/[^/]+\/.+?)\.js$/.exec(rel);
  return noble ? noble[1] : undefined;
}

export async function buildTestProgram(moddable: ModdableSdk, outDir: string): Promise<RunnerBuild> {
  const js = join(outDir, "js");
  rmSync(js, { recursive: true, force: true });
  mkdirSync(join(js, "shim"), { recursive: true });

  const entries: Record<string, string> = {};
  for (const file of readdirSync(CONTRACTS).filter((f) => f.endsWith(".contract.ts")).sort()) {
    const url = pathToFileURL(join(CONTRACTS, file));
    entries[suiteModule(url).slice("xs-ota-test/".length)] = suiteEntry(url, true);
  }
  for (const app of ["passes", "fails"]) entries[`esp32-${app}`] = `import ${JSON.stringify(MODDABLE_GLOBALS)};\nimport ${JSON.stringify(join(APPS, `${app}.ts`))};\n`;
  const fakes = Object.entries(MODDABLE_FAKES);
  for (const [key, file] of fakes) {
    const hasDefault = /^export default |\bas default\b/m.test(readFileSync(file, "utf8"));
    entries[`fake-${safe(key)}`] = `export * from ${JSON.stringify(file)};\n${hasDefault ? `export { default } from ${JSON.stringify(file)};\n` : ""}`;
  }
  // The fakes' own files are bundled, not mapped back to the specifiers they stand in for.
  const fakeFiles = new Set(Object.values(MODDABLE_FAKES));
  const outputs = await bundleModules(entries, js, (id) => (fakeFiles.has(id) ? undefined : deviceModule(id)));

  const modules: Record<string, string> = {};
  for (const o of outputs) modules[`xs-ota-test/${o.fileName.replace(/\.js$/, "")}`] = join(js, o.fileName.replace(/\.js$/, ""));
  for (const [key] of fakes) {
    const target = `xs-ota-test/fake-${safe(key)}`;
    const exported = outputs.find((o) => o.fileName === `fake-${safe(key)}.js`)?.exports ?? [];
    const shim = join(js, "shim", safe(key));
    writeFileSync(`${shim}.js`, `export * from ${JSON.stringify(target)};\n${exported.includes("default") ? `export { default } from ${JSON.stringify(target)};\n` : ""}`);
    modules[key] = shim;
  }
  // The esp32 host as manifest.json gives it to an esp32 app; its native module is a stand-in.
  const manifest = JSON.parse(readFileSync(join(ROOT, "manifest.json"), "utf8")) as { platforms: { esp32: { modules: Record<string, string> } } };
  for (const [key, path] of Object.entries(manifest.platforms.esp32.modules)) {
    if (!Object.hasOwn(MODDABLE_FAKES, key)) modules[key] = path.replace("$(XS_OTA)/", ROOT);
  }
  // The XS stack is the one manifest.json gives every app (creation.stack).
  return buildRunner({ moddable, outDir, manifestIncludes: [join(ROOT, "manifest.json")], modules, ...(process.env.XS_OTA_STACK ? { stack: Number(process.env.XS_OTA_STACK) } : {}) });
}
