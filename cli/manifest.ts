/**
 * npm run manifest: rewrites manifest.json's module list from the files in modules/, so that
 * every device module is reachable as "xs-ota/<path>" in a Moddable build.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

export function deviceModules(): Record<string, string> {
  const modules: Record<string, string> = {};
  for (const file of sources(join(root, "modules")).sort()) {
    const path = relative(join(root, "modules"), file).replace(/\.ts$/, "");
    modules[`xs-ota/${path}`] = `$(XS_OTA)/modules/${path}`;
  }
  return modules;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const file = join(root, "manifest.json");
  const manifest = JSON.parse(readFileSync(file, "utf8")) as { modules: Record<string, string>; preload?: string[] };
  manifest.modules = deviceModules();
  manifest.preload = Object.keys(manifest.modules).filter((k) => !k.startsWith("xs-ota/ports/"));
  writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
  console.log(`manifest.json: ${Object.keys(manifest.modules).length} modules`);
}
