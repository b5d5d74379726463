#!/usr/bin/env node
// The xs-ota command. The package runs dist/ (JavaScript that bin/build.js compiles at npm pack;
// the package ships no cli/ sources); a development checkout runs the TypeScript sources through
// tsx, even while an `npm pack` has a dist/ half-written.
import { existsSync } from "node:fs";

let main;
if (!existsSync(new URL("../cli/main.ts", import.meta.url))) ({ main } = await import("../dist/cli/main.js"));
else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../cli/main.ts"));
}
process.exitCode = await main(process.argv.slice(2));
