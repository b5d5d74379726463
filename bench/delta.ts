/**
 * npm run bench:delta
 *
 * A realistic app change, sent whole and as a patch, side by side in one run:
 * - the firmware is the demo app padded to 1 MB with real code (mqtt.js's and @peculiar/x509's
 *   minified builds and rollup's own source, from node_modules: the bytes an app's other modules
 *   would be), and 1.0.1 changes one module: the app's entry, whose self-test checks one thing
 *   more and logs differently; both are bundled and minified as any release is;
 * - four updates from 1.0.0 on simulated ESP32s (firmware on the device-faithful XS engine),
 *   HTTPS and MQTT streams, whole and as a patch (`--delta-from`, xdelta3): wire bytes are every
 *   TCP payload byte between device and cloud (a counting link proxy on each), from the job to
 *   the restart; XS compute is summed over every command the firmware ran in that time.
 * Ends with `bench:delta: W x fewer bytes, C compute/KB` (W the smaller of the two protocols'
 * ratios, C the XS compute per KB of image of the patched HTTP update).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildFirmware } from "../hosts/sim/firmware.ts";
import { writeSigningKeys } from "../cli/signing.ts";
import { flashDevice } from "../hosts/sim/board.ts";
import { SimulatedDevice } from "../hosts/sim/device.ts";
import { LinkProxy } from "../hosts/sim/link.ts";
import { startCloud, SIGNER_LABEL } from "../cloud/server.ts";

const KB = 1024;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "xs-ota-delta-bench-"));
const demo = join(ROOT, "hosts/sim/apps/demo.ts");
const padding = ["node_modules/mqtt/dist/mqtt.min.js", "node_modules/@peculiar/x509/build/x509.es.js", "node_modules/rollup/dist/es/shared/node-entry.js"].map((f) => readFileSync(join(ROOT, f), "utf8")).join("\n");

// One module changed between the releases: the app's entry.
const APP_1 = `import { runDemoApp, storageAndClockRespond } from ${JSON.stringify(demo)};
runDemoApp(storageAndClockRespond);`;
const APP_2 = `import { simBoard } from "xs-ota/sim/host";
import { runDemoApp, storageAndClockRespond } from ${JSON.stringify(demo)};
runDemoApp(() => {
  const { ports } = simBoard();
  const started = ports.clock.now();
  const ok = storageAndClockRespond() && ports.partitions.running().startsWith("ota_");
  ports.system.log("info", \`self-test took \${ports.clock.now() - started} ms on \${ports.partitions.running()}\`);
  return ok;
});`;

async function firmware(version: string, source: string): Promise<string> {
  const out = join(work, `fw-${version}.bin`);
  await buildFirmware({ entry: "", source, version, out, padTo: 1024 * KB, padding });
  return out;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

const v100 = await firmware("1.0.0", APP_1);
const v101 = await firmware("1.0.1", APP_2);
const { privatePath: keyPath, publicPem } = writeSigningKeys(join(work, "keys"));
const [mqttPort, httpsPort] = [await freePort(), await freePort()];
// Fast links: only the counts matter here.
const link = { rate: 1 << 30, delayMs: 0 };
const mqttLink = new LinkProxy({ port: mqttPort }, link);
const httpsLink = new LinkProxy({ port: httpsPort }, link);
const mqttProxy = await mqttLink.start();
const httpsProxy = await httpsLink.start();
const cloud = await startCloud({ dataDir: join(work, "cloud"), mqttPort, mqttsPort: 0, httpsPort, controlPort: 0, filesOrigin: `https://127.0.0.1:${httpsProxy}` });

interface Run {
  wire: number;
  compute: number;
  file: number;
  seconds: number;
}

async function update(name: string, protocol: "http" | "mqtt", delta: boolean): Promise<Run> {
  const dir = join(work, name);
  flashDevice(dir, new Uint8Array(readFileSync(v100)));
  let compute = 0;
  let counting = false;
  const device = new SimulatedDevice({
    dir,
    thing: name,
    brokerUrl: `mqtt://127.0.0.1:${mqttProxy}`,
    keys: { [SIGNER_LABEL]: publicPem },
    config: { ca: cloud.caCert },
    onMeters: (m) => void (counting && (compute += m.compute)),
  });
  let restarted = false;
  device.on("event", (e) => void (e.type === "restart" && (restarted = true)));
  await device.start();
  await until(() => device.bootInfo()?.state === "valid" && !device.jobPending(), 20_000, "the device to idle");
  await new Promise((r) => setTimeout(r, 300));
  mqttLink.resetCounters();
  httpsLink.resetCounters();
  counting = true;
  const t0 = performance.now();
  const res = await fetch(`${cloud.urls.control}/jobs`, {
    method: "POST",
    body: JSON.stringify({ thing: name, file: v101, key: keyPath, protocol, jobId: name, ...(delta ? { deltaFrom: v100 } : {}) }),
  });
  if (res.status !== 201) throw new Error(`job ${name}: ${await res.text()}`);
  const doc = (await res.json()) as { document: { afr_ota: { files: { filesize: number; xs_ota_delta?: { filesize: number } }[] } } };
  const file = doc.document.afr_ota.files[0];
  await until(() => restarted, 120_000, `${name} to restart into 1.0.1`);
  counting = false;
  const run = { wire: mqttLink.counters.up + mqttLink.counters.down + httpsLink.counters.up + httpsLink.counters.down, compute, file: delta ? (file?.xs_ota_delta?.filesize ?? 0) : (file?.filesize ?? 0), seconds: (performance.now() - t0) / 1000 };
  await until(() => cloud.jobs.describeJob(name)?.executions[0]?.status === "SUCCEEDED", 30_000, `${name} SUCCEEDED`);
  await device.stop();
  return run;
}

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const n = (x: number) => Math.round(x).toLocaleString("en-US");
try {
  const size = readFileSync(v101).length;
  console.log(`images: 1.0.0 ${n(readFileSync(v100).length)} bytes, 1.0.1 ${n(size)} bytes (one module changed, the rest real code)`);
  const runs: Record<string, Run> = {};
  for (const protocol of ["http", "mqtt"] as const) {
    for (const delta of [false, true]) {
      const name = `${protocol}-${delta ? "patch" : "full"}`;
      const r = await update(name, protocol, delta);
      runs[name] = r;
      console.log(`  ${name.padEnd(10)} file ${n(r.file).padStart(9)} bytes, wire ${n(r.wire).padStart(9)} bytes, XS ${n(r.compute).padStart(11)} compute (${n(r.compute / (size / KB))}/KB of image), ${r.seconds.toFixed(1)} s`);
    }
  }
  const ratio = (p: string) => (runs[`${p}-full`]?.wire ?? 0) / Math.max(1, runs[`${p}-patch`]?.wire ?? 0);
  const http = ratio("http");
  const mqtt = ratio("mqtt");
  console.log(`wire bytes, whole / patch: HTTPS ${http.toFixed(1)} x, MQTT streams ${mqtt.toFixed(1)} x`);
  const perKb = (runs["http-patch"]?.compute ?? 0) / (size / KB);
  const fullPerKb = (runs["http-full"]?.compute ?? 0) / (size / KB);
  console.log(`XS compute per KB of image, HTTPS: whole ${n(fullPerKb)}, patched ${n(perKb)} (${(perKb / fullPerKb).toFixed(2)} x)`);
  console.log(`bench:delta: ${Math.min(http, mqtt).toFixed(1)} x fewer bytes, ${n(perKb)} compute/KB`);
  process.exitCode = Math.min(http, mqtt) >= 10 ? 0 : 1;
} finally {
  await cloud.close();
  await mqttLink.close();
  await httpsLink.close();
  rmSync(work, { recursive: true, force: true });
}
