/**
 * npm run bench:fleet [-- --count 50 --protocol http|mqtt]
 *
 * A fleet update on this machine: the local cloud, `xs-ota sim --count N` (every device's
 * firmware on its own XS engine), one job for all N things. Prints how long the fleet took from
 * the job's creation until every device ran the new firmware confirmed and had reported, and how
 * many ended SUCCEEDED, then the cloud's cost of the execution updates: how many there were, the
 * CPU the Jobs service spent on each until its answer went to the broker (AwsJobsService.stats;
 * the simulator shares this process, so the process's total would not do), and how often the job
 * store was written.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFirmware, DEMO_APP } from "../hosts/sim/firmware.ts";
import { writeSigningKeys } from "../cli/signing.ts";
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
const image = async (version: string) => {
  const out = join(work, `fw-${version}.bin`);
  await buildFirmware({ entry: DEMO_APP.passes, version, out });
  return out;
};
const v100 = await image("1.0.0");
const v101 = await image("1.0.1");
const keys = writeSigningKeys(join(work, "keys"));

const cloud = await startCloud({ dataDir: join(work, "cloud"), mqttPort: 0, mqttsPort: 0, httpsPort: 0, controlPort: 0 });
const things = Array.from({ length: count }, (_, i) => `fleet-${i + 1}`);
const lines: string[] = [];
const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
const booted = performance.now();
const sim = main(["sim", "--thing", "fleet", "--count", String(count), "--firmware", v100, "--key", keys.publicPath, "--broker", cloud.urls.mqtt, "--ca", cloud.caPath, "--dir", join(work, "devices"), "--until", "1.0.1"], io);
while (!things.every((t) => cloud.jobs.log.some((l) => l.thing === t))) await new Promise((r) => setTimeout(r, 50));
const ready = performance.now();
const response = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ things, file: v101, key: keys.privatePath, protocol, jobId: "fleet" }) });
if (response.status !== 201) throw new Error(await response.text());
const created = performance.now();
const code = await sim;
const done = performance.now();
const executions = cloud.jobs.describeJob("fleet")?.executions ?? [];
const succeeded = executions.filter((e) => e.status === "SUCCEEDED").length;
const stats = cloud.jobs.stats;
await cloud.close();
rmSync(work, { recursive: true, force: true });

console.log(lines.at(-1));
console.log(`fleet: ${count} devices on XS booted and asked for jobs in ${((ready - booted) / 1000).toFixed(1)} s`);
console.log(`fleet: one ${protocol.toUpperCase()} job for ${count} devices: ${succeeded} SUCCEEDED, ${count - succeeded} not, in ${((done - created) / 1000).toFixed(1)} s (sim exit ${code})`);
const perUpdate = stats.updates > 0 ? stats.updateCpuMicros / stats.updates / 1000 : 0;
console.log(
  `fleet: ${count} devices, ${stats.updates} execution updates, ${perUpdate.toFixed(3)} ms cloud CPU per update (jobs.json written ${stats.snapshots} times, ${stats.appends} log appends)`,
);
process.exitCode = code === 0 && succeeded === count ? 0 : 1;
