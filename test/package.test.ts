/**
 * The npm package (issue #16): `npm pack` (the repo's own prepack builds dist/), installed into an
 * empty folder without devDependencies, runs `xs-ota --help` and `xs-ota demo`. The install runs
 * @agoric/xsnap's own build and xs-ota's postinstall (the simulator's XS engine), about a minute;
 * where install scripts do not run, the demo builds the engine on first use (ensureDeviceEngine).
 * A Moddable app that only wants the device side installs with --ignore-scripts: nothing is
 * compiled, and manifest.json's paths must all exist from node_modules/xs-ota.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, test } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "xs-ota-package-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(command: string, args: string[], cwd: string, timeout = 240_000) {
  const r = spawnSync(command, args, { cwd, encoding: "utf8", timeout, env: { ...process.env, npm_config_update_notifier: "false" } });
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

test("npm pack installs with --omit=dev and runs --help and the demo", { timeout: 300_000 }, () => {
  const packs = join(work, "packs");
  mkdirSync(packs);
  const t0 = Date.now();
  const [packed] = JSON.parse(run("npm", ["pack", "--json", "--silent", "--pack-destination", packs], ROOT).replace(/dist\/: .*\n/, "")) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
  const tarball = join(packs, packed.filename);
  const paths = packed.files.map((f) => f.path);
  expect(paths.filter((p) => /^(test|bench|\.ci)\//.test(p))).toEqual([]);
  expect(paths).toContain("dist/cli/main.js");
  expect(paths).toContain("modules/agent/index.ts");
  expect(paths).toContain("manifest.json");
  expect(statSync(tarball).size).toBe(packed.size);
  expect(packed.size).toBeLessThan(2_000_000);
  console.log(`xs-ota package: ${(packed.size / 1000).toFixed(1)} kB packed, ${(packed.unpackedSize / 1000).toFixed(1)} kB unpacked, ${paths.length} files (pack ${Date.now() - t0} ms)`);
  expect(readdirSync(ROOT)).not.toContain("dist"); // postpack removes it: development runs the sources

  const app = join(work, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true }));
  const t1 = Date.now();
  run("npm", ["install", "--omit=dev", "--no-audit", "--no-fund", tarball], app);
  console.log(`xs-ota package: npm install --omit=dev ${Date.now() - t1} ms`);
  expect(readdirSync(join(app, "node_modules"))).not.toContain("tsx");

  expect(run("npx", ["xs-ota", "--help"], app)).toContain("xs-ota demo");
  const t2 = Date.now();
  const demo = run("npx", ["xs-ota", "demo", "--dir", join(work, "demo")], app);
  console.log(`xs-ota package: demo ${Date.now() - t2} ms\n${demo.trim().split("\n").slice(-6).join("\n")}`);
  expect(demo).toMatch(/dev-1/);
});

/** Every file manifest.json names through $(XS_OTA), as mcconfig resolves module paths (with .ts or .js). */
function missingManifestPaths(pkg: string): string[] {
  const paths: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === "string" && v.startsWith("$(XS_OTA)/")) paths.push(v.slice("$(XS_OTA)/".length));
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(JSON.parse(readFileSync(join(pkg, "manifest.json"), "utf8")));
  expect(paths.length).toBeGreaterThan(50);
  return paths.filter((p) => ![p, `${p}.ts`, `${p}.js`].some((f) => existsSync(join(pkg, f))));
}

test("a device-only app: --ignore-scripts compiles nothing, and the manifest's modules, @noble and tsc are all there", { timeout: 300_000 }, () => {
  const packs = join(work, "packs-device");
  mkdirSync(packs);
  const [packed] = JSON.parse(run("npm", ["pack", "--json", "--silent", "--pack-destination", packs], ROOT).replace(/dist\/: .*\n/, "")) as { filename: string }[];
  const app = join(work, "device-app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "device-app", private: true }));
  const t0 = Date.now();
  run("npm", ["install", "--ignore-scripts", "--no-audit", "--no-fund", join(packs, packed.filename)], app);
  const pkg = join(app, "node_modules/xs-ota");
  console.log(`xs-ota package: npm install --ignore-scripts ${Date.now() - t0} ms, ${readdirSync(join(app, "node_modules")).length} entries in node_modules`);
  expect(existsSync(join(pkg, "node_modules/.xs-ota"))).toBe(false);
  // @noble comes bundled, where manifest.json names it whatever the app's own @noble versions are.
  expect(readdirSync(join(pkg, "node_modules/@noble")).sort()).toEqual(["curves", "hashes"]);
  expect(missingManifestPaths(pkg)).toEqual([]);
  // mcconfig's compiler: the app's typescript, installed as xs-ota's peer dependency.
  expect(JSON.parse(readFileSync(join(pkg, "manifest.json"), "utf8")).typescript.compiler).toBe("node $(XS_OTA)/bin/tsc.js");
  expect(run("node", [join(pkg, "bin/tsc.js"), "--version"], app)).toMatch(/^Version [56]\./);
});
