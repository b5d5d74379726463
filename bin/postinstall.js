#!/usr/bin/env node
// npm's postinstall: builds the simulator's XS engine (hosts/sim/engine/build.ts) when it can.
// It never fails an install: a Moddable app that only uses the device modules needs no engine,
// so without make, a C compiler or @agoric/xsnap, or with
// XS_OTA_SKIP_ENGINE=1, it says so in one line and exits 0; the simulator builds the engine on
// first use, or says what to install.
import { existsSync } from "node:fs";

const skip = (why) => {
  console.log(`xs-ota: simulator XS engine not built at install (${why}); the simulator builds it on first use`);
  process.exit(0);
};
if (process.env.XS_OTA_SKIP_ENGINE === "1") skip("XS_OTA_SKIP_ENGINE=1");

// The package runs dist/; a development checkout runs the sources through tsx.
const dist = new URL("../dist/hosts/sim/engine/build.js", import.meta.url);
let engine;
try {
  if (existsSync(dist)) engine = await import(dist.href);
  else {
    (await import("tsx/esm/api")).register();
    engine = await import("../hosts/sim/engine/build.ts");
  }
} catch (e) {
  skip(`cannot load the engine build: ${e instanceof Error ? e.message.split("\n")[0] : e}`);
}
const why = engine.cannotBuildEngine();
if (why) skip(why);
const started = Date.now();
try {
  const binary = engine.buildDeviceEngine(process.argv.includes("--force"));
  console.log(`device-faithful XS: ${binary} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
} catch (e) {
  // A compiler that fails: the whole log for whoever looks, but still no failed install.
  console.error(e instanceof Error ? e.message : String(e));
  skip("the build failed, above");
}
