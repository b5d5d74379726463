#!/usr/bin/env node
// The xs-ota command. The package runs dist/ (JavaScript that bin/build.js compiles at npm pack);
// a development checkout, which has no dist/, runs the TypeScript sources through tsx.
import { existsSync } from "node:fs";

const dist = new URL("../dist/cli/main.js", import.meta.url);
let main;
if (existsSync(dist)) ({ main } = await import(dist.href));
else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../cli/main.ts"));
}
process.exitCode = await main(process.argv.slice(2));
