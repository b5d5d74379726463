/**
 * npm run bench:device [-- --rate-mbit 4 --delay 50 --flash esp32] [--only NAME] [--trace PREFIX]
 *
 * A 1 MB update on a slow link to a device with real flash timing: the local cloud, a simulated
 * ESP32 whose flash calls stall as its SPI NOR would (hosts/sim/flash-timing.ts), and between
 * them a link model (hosts/sim/link.ts: 4 Mbit/s, 50 ms each way) for MQTT and for HTTPS (the
 * presigned URLs name the proxy: CloudOptions.filesOrigin). Four updates: this agent's defaults
 * over HTTPS and over an MQTT stream, then the same agent set up as AWS's C agent is by default
 * (one 4 KB block per request, one request at a time, the whole slot erased first) on each.
 *
 * Each is timed from the first request for the file (or an erase of the slot before it) to
 * the completion of the last flash write inside the image, from the bridge's trace. The limit is
 * max(link, flash): link = the bytes the proxy carried towards the device at the link's rate,
 * plus the round trips before the first byte (TCP, TLS 1.3 and the request for HTTPS; the
 * request for a stream, whose MQTT session is already up); flash = the least erase-and-program
 * time of the image (its 64 KB blocks as block erases, 256-byte page programs).
 */
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFirmware, DEMO_APP } from "../hosts/sim/firmware.ts";
import { flashDevice } from "../hosts/sim/board.ts";
import { SimulatedDevice } from "../hosts/sim/device.ts";
import type { HardwareTrace } from "../hosts/sim/bridge-host.ts";
import { FLASH_TIMINGS, imageFlashMs } from "../hosts/sim/flash-timing.ts";
import { LinkProxy } from "../hosts/sim/link.ts";
import { writeSigningKeys } from "../cli/signing.ts";
import { SIGNER_LABEL } from "../cloud/server.ts";
import { Child } from "./soak-proc.ts";
import { freePort } from "../test/support/ports.ts";
import type { AgentConfig } from "../modules/agent/config.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
};
const rate = (Number(option("rate-mbit", "4")) * 1e6) / 8;
const delayMs = Number(option("delay", "50"));
const timing = FLASH_TIMINGS[option("flash", "esp32")];
if (timing === undefined || !(rate > 0) || !(delayMs >= 0)) {
  console.error(`usage: npm run bench:device -- [--rate-mbit 4] [--delay 50] [--flash ${Object.keys(FLASH_TIMINGS).join("|")}]`);
  process.exit(2);
}
const RTT = 2 * delayMs;
/** One run only (for looking into it); the summary line needs all four. */
const only = option("only", "");
/** Writes each run's hardware trace to PREFIX-NAME.json. */
const dump = option("trace", "");
/** AWS's C OTA agent as configured by default (ota_config.h, ota_demo_core_*.c): 4 KB blocks, one at a time. */
const AWS_STYLE: Partial<AgentConfig> = { blockSize: 4096, blocksPerRequest: 1, window: 1, httpWindow: 4096, eraseWholeSlot: true };
const MB = 1024 * 1024;

const work = mkdtempSync(join(tmpdir(), "xs-ota-bench-device-"));
const images = [await buildFirmware({ entry: DEMO_APP.passes, version: "1.0.0", out: join(work, "fw-1.0.0.bin") })];
const file = join(work, "fw-1.0.1.bin");
const image = await buildFirmware({ entry: DEMO_APP.passes, version: "1.0.1", out: file, padTo: MB });
const keys = writeSigningKeys(join(work, "keys"));
const [httpsPort, mqttPort, mqttsPort, controlPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
const httpsLink = new LinkProxy({ port: httpsPort }, { rate, delayMs });
const httpsProxyPort = await httpsLink.start();
const mqttLink = new LinkProxy({ port: mqttPort }, { rate, delayMs });
const mqttProxyPort = await mqttLink.start();
// The cloud in a process of its own, as it is a machine of its own: its TLS, signing and disk
// writes must not hold up the event loop that serves the device's bridge and the link.
const data = join(work, "cloud");
const log = createWriteStream(join(work, "cloud.log"));
const cloud = new Child("cloud", ["cloud", "--data", data, "--mqtt-port", String(mqttPort), "--mqtts-port", String(mqttsPort), "--https-port", String(httpsPort), "--control-port", String(controlPort), "--files-origin", `https://127.0.0.1:${httpsProxyPort}`], /^control /, log);
const control = `http://127.0.0.1:${controlPort}`;
/** The cloud's CA, read once it has started (it makes one in its data folder). */
let caCert = "";

async function jobStatus(jobId: string): Promise<string> {
  const response = await fetch(`${control}/jobs/${jobId}`);
  if (response.status !== 200) return "";
  const d = (await response.json()) as { executions?: { status: string }[] };
  return d.executions?.[0]?.status ?? "";
}

interface Run {
  seconds: number;
  down: number;
  up: number;
  nvsPerMB: number;
  requests: number;
}

/** Where the new image goes: ota_1 of the 4 MB table (the device boots ota_0). */
const SLOT = 0x1f0000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function update(name: string, protocol: "http" | "mqtt", config: Partial<AgentConfig>): Promise<Run> {
  const thing = `bench-${name}`;
  const dir = join(work, "devices", thing);
  flashDevice(dir, images[0] as Uint8Array);
  const trace: HardwareTrace[] = [];
  const device = new SimulatedDevice({
    dir,
    thing,
    brokerUrl: `mqtt://127.0.0.1:${mqttProxyPort}`,
    keys: { [SIGNER_LABEL]: readFileSync(keys.publicPath, "utf8") },
    config: { ca: caCert, ...config },
    flashTiming: timing,
    trace: (e) => trace.push(e),
  });
  const errors: string[] = [];
  device.on("event", (e) => {
    if (e.type === "log" && e.level === "error") errors.push(e.message);
  });
  await device.start();
  // Up, and idle: it asked for its next job (and had the answer, no job) before this one is made.
  while (!trace.some((e) => e.kind === "mqtt.publish" && e.topic.endsWith("/jobs/$next/get"))) await sleep(20);
  await sleep(1000);
  for (const link of [mqttLink, httpsLink]) link.resetCounters();
  const jobId = `bench-${name}`;
  const response = await fetch(`${control}/jobs`, { method: "POST", body: JSON.stringify({ thing, file, key: keys.privatePath, protocol, jobId }) });
  if (response.status !== 201) throw new Error(`job ${jobId}: ${response.status} ${await response.text()}`);
  const deadline = performance.now() + 150_000;
  let status = "";
  let last = -1;
  let bytes = { up: 0, down: 0 };
  for (;;) {
    await sleep(100);
    // The link's bytes are read once the image is written, before the report and the reboot add theirs.
    const writes = trace.filter((e) => e.kind === "flash.write" && e.offset >= SLOT && e.offset < SLOT + image.length);
    const written = writes.reduce((n, e) => n + (e.kind === "flash.write" ? e.length : 0), 0);
    if (last < 0 && written >= image.length) {
      last = writes.reduce((t, e) => Math.max(t, e.at), 0);
      const link = protocol === "http" ? httpsLink : mqttLink;
      bytes = { up: link.counters.up, down: link.counters.down };
    }
    status = await jobStatus(jobId);
    if (["SUCCEEDED", "FAILED", "REJECTED", "CANCELED", "TIMED_OUT"].includes(status)) break;
    if (performance.now() > deadline) throw new Error(`job ${jobId} not done in 150 s (status ${status}): ${errors.join("; ")}`);
  }
  await device.stop();
  if (dump !== "") writeFileSync(`${dump}-${name}.json`, JSON.stringify(trace));
  if (status !== "SUCCEEDED") throw new Error(`job ${jobId} ended ${status}: ${errors.join("; ")}`);
  const isRequest = (e: HardwareTrace) => (e.kind === "http.request" && e.url.includes("/fw/")) || (e.kind === "mqtt.publish" && e.topic.includes("/streams/"));
  const firstRequest = trace.find(isRequest)?.at ?? Infinity;
  // An erase before the first request (AWS-style erases the whole slot first, as esp_ota_begin
  // does) is part of the update's time.
  const firstErase = trace.find((e) => e.kind === "flash.erase" && e.offset >= SLOT);
  const start = Math.min(firstRequest, firstErase?.kind === "flash.erase" ? firstErase.start : Infinity);
  const nvs = trace.filter((e) => e.kind === "state.set" && e.at >= start && e.at <= last).length;
  const requests = trace.filter((e) => isRequest(e) && e.at <= last).length;
  return { seconds: (last - start) / 1000, ...bytes, nvsPerMB: nvs / (image.length / MB), requests };
}

const fmt = (n: number) => n.toFixed(2);
const started = performance.now();
try {
  await cloud.start();
  caCert = readFileSync(join(data, "tls", "ca.pem"), "utf8");
  const flashSeconds = imageFlashMs(timing, image.length) / 1000;
  console.log(`bench:device: ${image.length} byte image; link ${(rate * 8) / 1e6} Mbit/s, ${delayMs} ms each way; flash ${timing.name} (sector ${timing.sectorEraseMs} ms, 64 KB block ${timing.blockEraseMs} ms, page ${timing.pageProgramMs.toFixed(3)} ms)`);
  console.log(`limit parts: flash ${fmt(flashSeconds)} s (${Math.ceil(image.length / 65536)} block erases, ${Math.ceil(image.length / 256)} page programs)`);
  const results = new Map<string, Run & { limit: number }>();
  for (const [name, protocol, config] of [
    ["http", "http", {}],
    ["mqtt", "mqtt", {}],
    ["aws-http", "http", AWS_STYLE],
    ["aws-mqtt", "mqtt", AWS_STYLE],
  ] as const) {
    if (only !== "" && only !== name) continue;
    const run = await update(name, protocol, config);
    const handshakes = protocol === "http" ? 3 : 1;
    const link = run.down / rate + (handshakes * RTT) / 1000;
    const limit = Math.max(link, flashSeconds);
    results.set(name, { ...run, limit });
    console.log(`${name}: ${fmt(run.seconds)} s; ${run.requests} requests; wire ${run.down} B down, ${run.up} B up; link ${fmt(link)} s (${handshakes} round trips + ${fmt(run.down / rate)} s), limit ${fmt(limit)} s; nvs ${fmt(run.nvsPerMB)} writes/MB`);
  }
  const r = (name: string) => results.get(name) ?? { seconds: NaN, limit: NaN, nvsPerMB: NaN, down: 0, up: 0, requests: 0 };
  const H = r("http").seconds / r("http").limit;
  const M = r("mqtt").seconds / r("mqtt").limit;
  const A = r("aws-http").seconds / r("http").seconds;
  const B = r("aws-mqtt").seconds / r("mqtt").seconds;
  const N = Math.max(r("http").nvsPerMB, r("mqtt").nvsPerMB);
  console.log(`bench:device: wall time ${((performance.now() - started) / 1000).toFixed(0)} s`);
  console.log(`bench:device: http ${fmt(H)} x limit, mqtt ${fmt(M)} x limit, aws-style http ${fmt(A)} x, mqtt ${fmt(B)} x slower, nvs ${Math.round(N)} writes/MB`);
  process.exitCode = H <= 1.15 && M <= 1.15 && A >= 5 && B >= 5 && N <= 20 ? 0 : 1;
} finally {
  await mqttLink.close();
  await httpsLink.close();
  await cloud.stop();
  log.end();
  rmSync(work, { recursive: true, force: true });
}
