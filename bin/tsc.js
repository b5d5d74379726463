#!/usr/bin/env node
// The TypeScript compiler mcconfig runs for xs-ota's modules (manifest.json's typescript.compiler).
// Found by Node's resolution from xs-ota's folder: a checkout's own node_modules, or, when xs-ota
// is an app's dependency, the app's typescript (a peer dependency, installed beside it). 5.7 is
// the first with rewriteRelativeImportExtensions, which the modules' `./x.ts` imports need; 7
// (the native port) refuses Moddable's own JavaScript modules without declarations (TS7016:
// embedded:io/socket/tcp/tls in SDK 8.2.3), so the range is 5.7 up to 7.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let pkg;
try {
  pkg = require("typescript/package.json");
} catch {
  console.error("xs-ota: mcconfig needs TypeScript 5.7 or later for xs-ota's modules, and none is installed: npm install --save-dev typescript");
  process.exit(1);
}
const [major, minor] = pkg.version.split(".").map(Number);
if (major < 5 || (major === 5 && minor < 7) || major >= 7) {
  console.error(`xs-ota: mcconfig needs TypeScript 5.7 or later, before 7, for xs-ota's modules and Moddable's typings; found ${pkg.version}: npm install --save-dev "typescript@>=5.7 <7"`);
  process.exit(1);
}
// Through the package's folder: TypeScript 7's "exports" do not list bin/tsc.
const { dirname, join } = await import("node:path");
const { pathToFileURL } = await import("node:url");
await import(pathToFileURL(join(dirname(require.resolve("typescript/package.json")), "bin/tsc")).href);
