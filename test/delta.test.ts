/**
 * Delta updates end to end (issue #17): a simulated ESP32 running real firmware on the
 * device-faithful XS takes an AWS job from the local cloud that offers a patch beside the full
 * image (`deltaFrom`), over HTTPS and over MQTT streams. The device rebuilds the new image from
 * its running one; a device that runs another image takes the full one, and decides so before
 * it writes anything; a restart while the patch is applied goes on from the last checkpoint.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFirmware, DEMO_APP } from "../hosts/sim/firmware.ts";
import { writeSigningKeys } from "../cli/signing.ts";
import { flashDevice } from "../hosts/sim/board.ts";
import { SimulatedDevice, type DeviceEvent } from "../hosts/sim/device.ts";
import type { HardwareTrace } from "../hosts/sim/bridge-host.ts";
import { FLASH_TIMINGS } from "../hosts/sim/flash-timing.ts";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";

const work = mkdtempSync(join(tmpdir(), "xs-ota-delta-"));
const { privatePath: keyPath, publicPem } = writeSigningKeys(work);
let cloud: Cloud;
const devices: SimulatedDevice[] = [];
const images: Record<string, string> = {};
const KB = 1024;

beforeAll(async () => {
  cloud = await startCloud({ dataDir: join(work, "cloud"), httpsPort: 0, controlPort: 0, mqttPort: 0, mqttsPort: 0 });
  // 256 KB images (padded): a patch between two versions is a few hundred bytes.
  for (const v of ["1.0.0", "1.0.1", "1.0.2"]) {
    images[v] = join(work, `fw-${v}.bin`);
    await buildFirmware({ entry: DEMO_APP.passes, version: v, out: images[v], padTo: 256 * KB, padding: "function f(a,b){return a+b}\n" });
  }
  // A release whose padding changed too: a patch of some 200 KB, long enough to be cut.
  images["1.0.1-big"] = join(work, "fw-1.0.1-big.bin");
  await buildFirmware({ entry: DEMO_APP.passes, version: "1.0.1", out: images["1.0.1-big"], padTo: 400 * KB, padding: randomText(300 * KB) });
});

afterAll(async () => {
  for (const d of devices) await d.stop();
  await cloud?.close();
  rmSync(work, { recursive: true, force: true });
});

async function until(condition: () => boolean, what: string, events: DeviceEvent[], ms = 40_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}; events:\n${events.map((e) => JSON.stringify(e)).join("\n")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Device {
  d: SimulatedDevice;
  events: DeviceEvent[];
  trace: HardwareTrace[];
}

function makeDevice(thing: string, image: string, slowFlash = false): Device {
  const dir = join(work, thing);
  flashDevice(dir, new Uint8Array(readFileSync(image)));
  const events: DeviceEvent[] = [];
  const trace: HardwareTrace[] = [];
  const d = new SimulatedDevice({ dir, thing, brokerUrl: cloud.urls.mqtt, keys: { [SIGNER_LABEL]: publicPem }, config: { ca: cloud.caCert }, crashDelay: 50, trace: (t) => trace.push(t), ...(slowFlash ? { flashTiming: FLASH_TIMINGS.esp32 } : {}) });
  d.on("event", (e) => events.push(e));
  devices.push(d);
  return { d, events, trace };
}

async function createJob(body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const r = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ key: keyPath, ...body }) });
  expect(r.status, await r.clone().text()).toBe(201);
  return ((await r.json()) as { document: Record<string, unknown> }).document;
}

/** Text that no patch can shrink: base64 of pseudo-random bytes. */
function randomText(n: number): string {
  const bytes = new Uint8Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return Buffer.from(bytes).toString("base64").slice(0, n);
}

const execution = (jobId: string, thing: string) => cloud.jobs.describeJob(jobId)?.executions.find((e) => e.thingName === thing);
const logged = (events: DeviceEvent[], text: RegExp) => events.some((e) => e.type === "log" && text.test(e.message));
const patchSize = (doc: Record<string, unknown>) => (doc as { afr_ota: { files: { xs_ota_delta: { filesize: number } }[] } }).afr_ota.files[0].xs_ota_delta.filesize;

describe.each(["http", "mqtt"] as const)("a delta update over %s", (protocol) => {
  it("rebuilds 1.0.1 from the running 1.0.0 and a patch, downloads only the patch, and SUCCEEDS", async () => {
    const thing = `delta-${protocol}`;
    const { d, events, trace } = makeDevice(thing, images["1.0.0"]);
    await d.start();
    await until(() => logged(events, /app 1\.0\.0 running/), "1.0.0 running", events);
    const jobId = `delta-${protocol}`;
    const doc = await createJob({ thing, file: images["1.0.1"], protocol, jobId, deltaFrom: images["1.0.0"] });
    const patch = patchSize(doc);
    expect(patch).toBeLessThan(readFileSync(images["1.0.1"]).length / 50);
    await until(() => execution(jobId, thing)?.status === "SUCCEEDED", "SUCCEEDED", events);
    expect(d.version).toBe("1.0.1");
    expect(logged(events, new RegExp(`downloading a ${patch}-byte patch instead of ${readFileSync(images["1.0.1"]).length} bytes`))).toBe(true);
    if (protocol === "http") {
      const urls = trace.filter((t) => t.kind === "http.request").map((t) => (t as { url: string }).url.split("?")[0]);
      expect(urls.every((u) => u.endsWith(`${jobId}.patch`)), urls.join("\n")).toBe(true);
    }
    expect(execution(jobId, thing)?.statusDetails?.["updatedBy"]).toBe("v1.0.0");
  });
});

it("a patch made from another version is refused before any write; the full image is taken instead", async () => {
  const thing = "delta-other";
  const { d, events, trace } = makeDevice(thing, images["1.0.0"]);
  await d.start();
  await until(() => logged(events, /app 1\.0\.0 running/), "1.0.0 running", events);
  const before = trace.length;
  const jobId = "delta-other";
  await createJob({ thing, file: images["1.0.2"], protocol: "http", jobId, deltaFrom: images["1.0.1"] });
  await until(() => execution(jobId, thing)?.status === "SUCCEEDED", "SUCCEEDED", events);
  expect(d.version).toBe("1.0.2");
  const refusal = events.findIndex((e) => e.type === "log" && /made from another image than the one running: taking the full image/.test(e.message));
  expect(refusal).toBeGreaterThan(-1);
  // The decision came before the update touched flash: its first erase follows the check.
  const updateTrace = trace.slice(before);
  const firstFlash = updateTrace.findIndex((t) => t.kind === "flash.erase" || t.kind === "flash.write");
  const firstRequest = updateTrace.findIndex((t) => t.kind === "http.request");
  expect(firstRequest).toBeGreaterThan(-1);
  expect(firstFlash).toBeGreaterThan(firstRequest);
  const urls = updateTrace.filter((t) => t.kind === "http.request").map((t) => (t as { url: string }).url.split("?")[0]);
  expect(urls.every((u) => u.endsWith(`${jobId}.bin`)), urls.join("\n")).toBe(true);
});

it("a restart while the patch is applied goes on from the last checkpoint, without fetching the patch again", async () => {
  const thing = "delta-cut";
  // A chip's erase and program times: applying takes long enough to be cut.
  const { d, events, trace } = makeDevice(thing, images["1.0.0"], true);
  await d.start();
  await until(() => logged(events, /app 1\.0\.0 running/), "1.0.0 running", events);
  const jobId = "delta-cut";
  await createJob({ thing, file: images["1.0.1"], protocol: "http", jobId, deltaFrom: images["1.0.0"] });
  // The first checkpoint of the applying: a window of the image is in flash.
  await until(() => trace.some((t) => t.kind === "state.set" && t.key === "ota.delta"), "a checkpoint", events);
  await d.stop();
  expect(d.version).toBe("1.0.0");
  expect(execution(jobId, thing)?.status).toBe("IN_PROGRESS");
  const requests = trace.filter((t) => t.kind === "http.request").length;
  const from = events.length;
  const erases = (from: number) => trace.slice(from).flatMap((t) => (t.kind === "flash.erase" ? [t.offset] : []));
  const slotStart = Math.min(...erases(0));
  const traced = trace.length;
  await d.start();
  await until(() => execution(jobId, thing)?.status === "SUCCEEDED", "SUCCEEDED", events);
  expect(d.version).toBe("1.0.1");
  expect(trace.filter((t) => t.kind === "http.request").length).toBe(requests);
  expect(logged(events.slice(from), /job delta-cut: resuming/)).toBe(true);
  // It went on past the image's first window: no erase at the slot's start again.
  expect(Math.min(...erases(traced).filter((o) => o >= slotStart)) - slotStart).toBeGreaterThanOrEqual(64 * KB);
});

it("a restart during the patch's download resumes it from the bytes in flash", async () => {
  const thing = "delta-cut-download";
  const { d, events, trace } = makeDevice(thing, images["1.0.0"], true);
  await d.start();
  await until(() => logged(events, /app 1\.0\.0 running/), "1.0.0 running", events);
  const jobId = "delta-cut-download";
  const doc = await createJob({ thing, file: images["1.0.1-big"], protocol: "http", jobId, deltaFrom: images["1.0.0"] });
  expect(patchSize(doc)).toBeGreaterThan(100 * KB);
  // The download's own progress record past its start: 64 KB of the patch are in flash.
  const progressRecords = () => trace.filter((t) => t.kind === "state.set" && t.key === "ota.prog").length;
  await until(() => progressRecords() >= 2, "a download record", events);
  await d.stop();
  expect(trace.some((t) => t.kind === "state.set" && t.key === "ota.delta")).toBe(false);
  const erases = (from: number) => trace.slice(from).flatMap((t) => (t.kind === "flash.erase" ? [t.offset] : []));
  // The patch lies at the end of ota_1 (0x1F0000 + 0x1E0000): its area begins at its lowest erase.
  const areaStart = Math.min(...erases(0).filter((o) => o >= 0x1f0000));
  const traced = trace.length;
  await d.start();
  await until(() => execution(jobId, thing)?.status === "SUCCEEDED", "SUCCEEDED", events);
  expect(d.version).toBe("1.0.1");
  // Resumed: the patch area was not erased again from its start.
  const again = erases(traced).filter((o) => o >= areaStart);
  expect(again.length).toBeGreaterThan(0);
  expect(Math.min(...again) - areaStart).toBeGreaterThanOrEqual(64 * KB);
});

