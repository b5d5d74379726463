#!/usr/bin/env node
// Compiles what Node runs (cli/, cloud/, hosts/sim/, modules/) to dist/ as ES modules, for the
// package (npm's prepack): Node 20 cannot run .ts, and tsx is a devDependency.
// - Relative `.ts` import specifiers (static, re-exports, import()) become `.js`.
// - `import.meta.url` / `import.meta.dirname` are those of the source file, so paths computed
//   from them (partitions/, manifest.json, hosts/sim/apps/*.ts, the XS engine) are the same in
//   dist as in the sources, which the package also ships: the simulator bundles firmware from
//   modules/*.ts and hosts/sim/xs/*.ts at run time.
// Then checks that every package dist imports is a dependency (not a devDependency).
//   node bin/build.js
import { transform, build } from "esbuild";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIST = join(ROOT, "dist");
const FOLDERS = ["cli", "cloud", "hosts/sim", "modules"];
// Tests and declarations only: Node also imports some of hosts/sim/xs (the bridge), and compiling
// the rest of the firmware sources does no harm (the .ts ship too: rollup bundles them).
const SKIP = [/\.test\.ts$/, /\.d\.ts$/];

function* tsFiles(folder) {
  for (const name of readdirSync(join(ROOT, folder))) {
    const path = `${folder}/${name}`;
    if (statSync(join(ROOT, path)).isDirectory()) yield* tsFiles(path);
    else if (name.endsWith(".ts") && !SKIP.some((re) => re.test(path))) yield path;
  }
}

/** `./x.ts` -> `./x.js` in import/export ... from, import "...", and import("..."). */
function rewriteSpecifiers(js) {
  const spec = (q, s) => (s.startsWith(".") && s.endsWith(".ts") ? `${q}${s.slice(0, -3)}.js${q}` : `${q}${s}${q}`);
  return js
    .replace(/(\bfrom\s*|\bimport\s*)(["'])([^"'\n]+)\2/g, (_, head, q, s) => head + spec(q, s))
    .replace(/(\bimport\s*\(\s*)(["'])([^"'\n]+)\2(\s*\))/g, (_, head, q, s, tail) => head + spec(q, s) + tail);
}

const started = Date.now();
rmSync(DIST, { recursive: true, force: true });
const files = FOLDERS.flatMap((f) => [...tsFiles(f)]);
for (const path of files) {
  const source = readFileSync(join(ROOT, path), "utf8");
  const out = join(DIST, path.replace(/\.ts$/, ".js"));
  const back = relative(dirname(out), join(ROOT, path)).split(sep).join("/");
  const uses = /\bimport\.meta\.(url|dirname|filename)\b/.test(source);
  const body = source
    .replace(/\bimport\.meta\.url\b/g, "__xsOtaSourceUrl")
    .replace(/\bimport\.meta\.dirname\b/g, "__xsOtaSourceDirname")
    .replace(/\bimport\.meta\.filename\b/g, "__xsOtaSourceFilename");
  const { code } = await transform(body, {
    loader: "ts",
    format: "esm",
    target: "node20",
    sourcefile: path,
    tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true } },
  });
  const header = uses
    ? `import { fileURLToPath as __xsOtaPath } from "node:url";\n` +
      `const __xsOtaSourceUrl = new URL(${JSON.stringify(back)}, import.meta.url).href;\n` +
      `const __xsOtaSourceFilename = __xsOtaPath(__xsOtaSourceUrl);\n` +
      `const __xsOtaSourceDirname = __xsOtaPath(new URL(".", __xsOtaSourceUrl));\n`
    : "";
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, header + rewriteSpecifiers(code));
}

// Every package the CLI can load must be a runtime dependency.
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const runtime = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]);
const { metafile } = await build({
  entryPoints: [join(DIST, "cli/main.js")],
  bundle: true,
  write: false,
  metafile: true,
  platform: "node",
  format: "esm",
  packages: "external",
  logLevel: "silent",
});
const missing = new Set();
for (const input of Object.values(metafile.inputs))
  for (const { path, external } of input.imports) {
    if (!external || path.startsWith("node:") || builtinModules.includes(path)) continue;
    const name = path.startsWith("@") ? path.split("/").slice(0, 2).join("/") : path.split("/")[0];
    if (!runtime.has(name)) missing.add(name);
  }
if (missing.size) {
  console.error(`dist imports packages that are not dependencies: ${[...missing].join(", ")}`);
  process.exit(1);
}
// stderr: npm pack --json prints its JSON on stdout, after prepack's output.
console.error(`dist/: ${files.length} modules (${Date.now() - started} ms)`);
