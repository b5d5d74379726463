/**
 * npm run test:moddable: xs-ota on the user's Moddable SDK (MODDABLE, its Linux tools built).
 * 1. The JavaScript stages of the esp32 example's build (mcconfig's tsc against the SDK's own
 *    typings, xsc, xsl with the preloads), without ESP-IDF: 0 errors, and no xsl warning for an
 *    xs-ota module (what is preloaded lives frozen in flash).
 * 2. The contract suites and the esp32 host's whole update (over its stand-ins) on Moddable's own
 *    XS: an x-cli-lin program (program.ts) that vitest drives through vitest.moddable.config.ts.
 * Ends with "N passed, N failed". Without MODDABLE it says what it needs and exits 0.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildEsp32JsStages, moddableSdk, ModdableBuildError } from "./mcconfig.ts";
import { buildTestProgram } from "./program.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WORK = join(ROOT, "node_modules/.xs-ota/moddable");

const sdk = moddableSdk();
if (!sdk) {
  console.log("test:moddable: skipped; set MODDABLE to a Moddable SDK whose Linux tools are built (build/makefiles/lin: make), e.g. MODDABLE=~/Projects/moddable npm run test:moddable");
  process.exit(0);
}
console.log(`test:moddable: Moddable SDK ${sdk.version} at ${sdk.root}`);

function fail(what: string, e: unknown): never {
  console.error(`test:moddable: ${what} failed`);
  if (e instanceof ModdableBuildError) console.error(e.errors.length ? e.errors.join("\n") : e.log.slice(-4000));
  else console.error(e instanceof Error ? e.message : String(e));
  console.log("\n0 passed, 1 failed");
  process.exit(1);
}

let started = Date.now();
const esp32 = await buildEsp32JsStages({ moddable: sdk, app: join(ROOT, "hosts/esp32/example"), outDir: join(WORK, "esp32") }).catch((e: unknown) => fail("the esp32 example's JavaScript stages", e));
const ours = esp32.warnings.filter((w) => w.includes(": xs-ota/"));
console.log(`esp32 example, tsc + xsc + xsl: ${esp32.errors.length} errors, ${ours.length} xsl warnings for xs-ota modules (${esp32.warnings.length} in all) (${((Date.now() - started) / 1000).toFixed(0)} s)`);
for (const line of [...esp32.errors, ...ours]) console.log(`  ${line}`);
if (!esp32.ok || ours.length > 0) {
  console.log("\n0 passed, 1 failed");
  process.exit(1);
}

started = Date.now();
const program = await buildTestProgram(sdk, join(WORK, "runner")).catch((e: unknown) => fail("the x-cli-lin test program", e));
console.log(`x-cli-lin test program: ${program.binary} (${((Date.now() - started) / 1000).toFixed(0)} s)`);

const run = spawnSync(process.execPath, [join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "--config", join(ROOT, "vitest.moddable.config.ts")], {
  cwd: ROOT,
  stdio: "inherit",
  env: { ...process.env, XS_OTA_MODDABLE_RUNNER: program.binary },
});
process.exit(run.status ?? 1);
