/**
 * npm run bench:fleet [-- --count 50 --protocol http|mqtt]
 *
 * A fleet update on this machine: the local cloud, `xs-ota sim --count N` (every device's
 * firmware on its own XS engine), one job for all N things. Prints how long the fleet took from
 * the job's creation until every device ran the new firmware confirmed and had reported, and how
 * many ended SUCCEEDED.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleFile } from "../hosts/sim/bundle.ts";
import { sha256 } from "../hosts/sim/board.ts";
import { packImage } from "../modules/storage/esp-image.ts";
import { startCloud } from "../cloud/server.ts";
import { main } from "../cli/main.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
};
const count = Number(option("count", "50"));
const protocol = option("protocol", "http");

const work = mkdtempSync(join(tmpdir(), "xs-ota-fleet-"));
const script = await bundleFile(fileURLToPath(new URL("../hosts/sim/apps/self-test-passes.ts", import.meta.url)), { minify: true });
const image = (version: string) => {
  const path = join(work, `fw-${version}.bin`);
  writeFileSync(path, packImage({ version, payload: new TextEncoder().encode(script), sha256 }));
  return path;
};
const v100 = image("1.0.0");
const v101 = image("1.0.1");
const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
writeFileSync(join(work, "key.pem"), privateKey.export({ type: "pkcs8", format: "pem" }));
writeFileSync(join(work, "key.pub.pem"), publicKey.export({ type: "spki", format: "pem" }));

const cloud = await startCloud({ dataDir: join(work, "cloud"), mqttPort: 0, httpsPort: 0, controlPort: 0 });
const things = Array.from({ length: count }, (_, i) => `fleet-${i + 1}`);
const lines: string[] = [];
const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
const booted = performance.now();
const sim = main(["sim", "--thing", "fleet", "--count", String(count), "--firmware", v100, "--key", join(work, "key.pub.pem"), "--broker", cloud.urls.mqtt, "--ca", cloud.caPath, "--dir", join(work, "devices"), "--until", "1.0.1"], io);
while (!things.every((t) => cloud.jobs.log.some((l) => l.thing === t))) await new Promise((r) => setTimeout(r, 50));
const ready = performance.now();
const response = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ things, file: v101, key: join(work, "key.pem"), protocol, jobId: "fleet" }) });
if (response.status !== 201) throw new Error(await response.text());
const created = performance.now();
const code = await sim;
const done = performance.now();
const executions = cloud.jobs.describeJob("fleet")?.executions ?? [];
const succeeded = executions.filter((e) => e.status === "SUCCEEDED").length;
await cloud.close();
rmSync(work, { recursive: true, force: true });

console.log(lines.at(-1));
console.log(`fleet: ${count} devices on XS booted and asked for jobs in ${((ready - booted) / 1000).toFixed(1)} s`);
console.log(`fleet: one ${protocol.toUpperCase()} job for ${count} devices: ${succeeded} SUCCEEDED, ${count - succeeded} not, in ${((done - created) / 1000).toFixed(1)} s (sim exit ${code})`);
process.exitCode = code === 0 && succeeded === count ? 0 : 1;
