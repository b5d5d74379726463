/**
 * Whole updates on the staging boards: a simulated Nuvoton M487 (raw app in APROM, @AFRTOS
 * descriptor, the Cloner) and a simulated W800 (wm_iot_sdk image header, app_ota staging, the
 * second-stage boot that checks and decompresses) run the demo firmware on XS and take AWS jobs
 * from the local cloud: the Nuvoton over MQTT streams, the W800 over HTTPS, as their SDKs' AWS
 * examples do. The signature is checked before the bootloader may install anything.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFirmware, DEMO_APP } from "../hosts/sim/firmware.ts";
import { writeSigningKeys } from "../cli/signing.ts";
import { flashDevice } from "../hosts/sim/board.ts";
import { SimulatedDevice, type DeviceEvent } from "../hosts/sim/device.ts";
import type { BoardName } from "../hosts/sim/layouts.ts";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";
import { runCliLines } from "./support/cli.ts";

const work = mkdtempSync(join(tmpdir(), "xs-ota-boards-"));
const { privatePath: keyPath, publicPath, publicPem } = writeSigningKeys(work);
let cloud: Cloud;
const devices: SimulatedDevice[] = [];

beforeAll(async () => {
  cloud = await startCloud({ dataDir: join(work, "cloud"), httpsPort: 0, controlPort: 0, mqttPort: 0, mqttsPort: 0 });
});

afterAll(async () => {
  for (const d of devices) await d.stop();
  await cloud?.close();
  rmSync(work, { recursive: true, force: true });
});

async function until(condition: () => boolean, what: string, events: DeviceEvent[], ms = 30_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}; events:\n${events.map((e) => JSON.stringify(e)).join("\n")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function firmware(board: BoardName, version: string, entry = DEMO_APP.passes): Promise<string> {
  const out = join(work, `${board}-${version}-${entry.split("/").pop()}.bin`);
  await buildFirmware({ entry, version, out, board });
  return out;
}

async function device(board: BoardName, thing: string, image: string, key = publicPem): Promise<{ d: SimulatedDevice; events: DeviceEvent[] }> {
  const dir = join(work, thing);
  flashDevice(dir, new Uint8Array(readFileSync(image)), { board });
  const d = new SimulatedDevice({ dir, thing, brokerUrl: cloud.urls.mqtt, keys: { [SIGNER_LABEL]: key }, config: { ca: cloud.caCert }, crashDelay: 50 });
  const events: DeviceEvent[] = [];
  d.on("event", (e) => events.push(e));
  devices.push(d);
  await d.start();
  return { d, events };
}

async function createJob(body: Record<string, unknown>): Promise<void> {
  const r = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ key: keyPath, ...body }) });
  expect(r.status, await r.clone().text()).toBe(201);
}

const status = (jobId: string, thing: string) => cloud.jobs.describeJob(jobId)?.executions.find((e) => e.thingName === thing);
const terminal = (s: string | undefined) => s === "SUCCEEDED" || s === "FAILED" || s === "REJECTED";
const logged = (events: DeviceEvent[], text: RegExp) => events.some((e) => e.type === "log" && text.test(e.message));

describe("a simulated Nuvoton M487 (@AFRTOS staging, Cloner)", () => {
  it("takes an AWS job over MQTT streams: staged in SPI flash, cloned into APROM, confirmed, SUCCEEDED", async () => {
    const { d, events } = await device("nuvoton", "nu-1", await firmware("nuvoton", "1.0.0"));
    await until(() => logged(events, /^app 1\.0\.0 running/), "the app to start", events);
    await createJob({ thing: "nu-1", file: await firmware("nuvoton", "1.0.1"), protocol: "mqtt", version: "1.0.1", jobId: "nu-job-1" });
    await until(() => terminal(status("nu-job-1", "nu-1")?.status), "the job to end", events);
    expect(status("nu-job-1", "nu-1")?.status).toBe("SUCCEEDED");
    await until(() => d.bootInfo()?.state === "valid", "the confirm", events);
    expect(d.version).toBe("1.0.1");
    const boots = events.flatMap((e) => (e.type === "boot" ? [e] : []));
    expect(boots.map((b) => b.version)).toEqual(["1.0.0", "1.0.1"]);
    expect(boots[1]?.bootloader.some((l) => /Clone OTA image from SPI Flash to APROM/.test(l))).toBe(true);
  });

  it("a new image whose self-test fails is rejected and the Cloner restores the old one, which reports FAILED", async () => {
    const { d, events } = await device("nuvoton", "nu-2", await firmware("nuvoton", "1.0.0"));
    await until(() => logged(events, /^app 1\.0\.0 running/), "the app to start", events);
    await createJob({ thing: "nu-2", file: await firmware("nuvoton", "1.0.2", DEMO_APP.fails), protocol: "mqtt", version: "1.0.2", jobId: "nu-job-2" });
    await until(() => terminal(status("nu-job-2", "nu-2")?.status), "the job to end", events);
    expect(status("nu-job-2", "nu-2")?.status).toBe("FAILED");
    expect(d.version).toBe("1.0.0");
    expect(events.flatMap((e) => (e.type === "boot" ? [e.version] : []))).toEqual(["1.0.0", "1.0.2", "1.0.0"]);
  });
});

describe("a simulated W800 (wm_iot_sdk header, app_ota staging, secboot)", () => {
  it("an image signed by another key is staged but never installed: FAILED, and the old firmware runs on", async () => {
    const other = writeSigningKeys(join(work, "other-key"));
    const { d, events } = await device("w800", "w8-3", await firmware("w800", "1.0.0"), other.publicPem);
    await until(() => logged(events, /^app 1\.0\.0 running/), "the app to start", events);
    await createJob({ thing: "w8-3", file: await firmware("w800", "1.0.1"), protocol: "http", jobId: "w8-badsig" });
    await until(() => terminal(status("w8-badsig", "w8-3")?.status), "the job to end", events);
    expect(status("w8-badsig", "w8-3")?.status).toBe("FAILED");
    expect(JSON.stringify(status("w8-badsig", "w8-3")?.statusDetails)).toMatch(/signature/);
    const flash = readFileSync(join(work, "w8-3", "flash.bin"));
    expect(flash.subarray(0x1df000, 0x1e0000).every((b) => b === 0xff), "no install record").toBe(true);
    expect(d.version).toBe("1.0.0");
    expect(events.filter((e) => e.type === "boot")).toHaveLength(1);
  });

  it("takes an AWS job over HTTPS with an XZ image: checked, staged, decompressed by secboot, confirmed, SUCCEEDED", async () => {
    const { d, events } = await device("w800", "w8-1", await firmware("w800", "1.0.0"));
    await until(() => logged(events, /^app 1\.0\.0 running/), "the app to start", events);
    const xz = join(work, "w800-1.0.1-xz.img");
    await buildFirmware({ entry: DEMO_APP.passes, version: "1.0.1", out: xz, board: "w800", xz: true });
    await createJob({ thing: "w8-1", file: xz, protocol: "http", jobId: "w8-job-1" });
    await until(() => terminal(status("w8-job-1", "w8-1")?.status), "the job to end", events);
    expect(status("w8-job-1", "w8-1")?.status).toBe("SUCCEEDED");
    await until(() => d.bootInfo()?.state === "valid", "the confirm", events);
    expect(d.version).toBe("1.0.1");
    const boots = events.flatMap((e) => (e.type === "boot" ? [e] : []));
    expect(boots.map((b) => b.version)).toEqual(["1.0.0", "1.0.1"]);
    expect(boots[1]?.bootloader).toEqual(expect.arrayContaining(["unxz...", "unxz succeed"]));
  });

  it("refuses an image of the version it runs before writing a byte, and a failed self-test keeps the image it cannot go back from", async () => {
    const { d, events } = await device("w800", "w8-2", await firmware("w800", "1.0.0"));
    await until(() => logged(events, /^app 1\.0\.0 running/), "the app to start", events);
    await createJob({ thing: "w8-2", file: await firmware("w800", "1.0.0"), protocol: "http", jobId: "w8-same" });
    await until(() => terminal(status("w8-same", "w8-2")?.status), "the same-version job to end", events);
    expect(status("w8-same", "w8-2")?.status).toBe("FAILED");
    expect(JSON.stringify(status("w8-same", "w8-2")?.statusDetails)).toMatch(/already running/);
    const flash = readFileSync(join(work, "w8-2", "flash.bin"));
    expect(flash.subarray(0x131000, 0x132000).every((b) => b === 0xff), "app_ota untouched").toBe(true);
    await createJob({ thing: "w8-2", file: await firmware("w800", "1.0.2", DEMO_APP.fails), protocol: "http", jobId: "w8-fails" });
    await until(() => terminal(status("w8-fails", "w8-2")?.status), "the failing job to end", events);
    expect(status("w8-fails", "w8-2")?.status).toBe("FAILED");
    expect(JSON.stringify(status("w8-fails", "w8-2")?.statusDetails)).toMatch(/keeps no previous image, so 1\.0\.2 stays running/);
    expect(d.version).toBe("1.0.2");
  });
});

describe("xs-ota sim --board and xs-ota image pack --target, as a user runs them", () => {
  it("bundle, image pack --target w800 --xz, sim --board w800 --until 1.0.1: the command-line path of a W800 update", async () => {
    const js = join(work, "demo.js");
    expect((await runCliLines(["bundle", DEMO_APP.passes, "-o", js])).code).toBe(0);
    const v100 = join(work, "cli-w800-1.0.0.img");
    const v101 = join(work, "cli-w800-1.0.1.img");
    expect((await runCliLines(["image", "pack", "--target", "w800", "--version", "1.0.0", "--payload", js, "-o", v100])).code).toBe(0);
    const packed = await runCliLines(["image", "pack", "--target", "w800", "--xz", "--version", "1.0.1", "--payload", js, "-o", v101]);
    expect(packed.code, packed.err.join("\n")).toBe(0);
    const run = runCliLines(["sim", "--board", "w800", "--thing", "w8-cli", "--firmware", v100, "--key", publicPath, "--broker", cloud.urls.mqtt, "--ca", cloud.caPath, "--dir", join(work, "cli-sim"), "--until", "1.0.1"]);
    const start = Date.now();
    while (!cloud.jobs.log.some((l) => l.thing === "w8-cli")) {
      if (Date.now() - start > 20_000) throw new Error("the simulated W800 never asked for a job");
      await new Promise((r) => setTimeout(r, 20));
    }
    await createJob({ thing: "w8-cli", file: v101, protocol: "http", jobId: "w8-cli" });
    const r = await run;
    expect(r.code, [...r.out, ...r.err].join("\n")).toBe(0);
    expect(r.out.at(-1)).toMatch(/^1 on 1\.0\.1; 1 updated, 0 halted, [\d.]+ s$/);
    expect(status("w8-cli", "w8-cli")?.status).toBe("SUCCEEDED");
  });

  it("image pack --target nuvoton makes a raw app whose version image info reads from its first line", async () => {
    const js = join(work, "tiny.js");
    writeFileSync(js, "trace('hi')\n");
    const out = join(work, "tiny-nuvoton.bin");
    const packed = await runCliLines(["image", "pack", "--target", "nuvoton", "--version", "1.2.3", "-o", out, js]);
    expect(packed.code, packed.err.join("\n")).toBe(0);
    const info = await runCliLines(["image", "info", out]);
    expect(info.out).toContain("version: 1.2.3 (its first line)");
    expect((await runCliLines(["image", "pack", "--target", "nuvoton", "--version", "1 2", "-o", out, js])).code).toBe(2);
  });

  it("sim --board names the boards it knows", async () => {
    const r = await runCliLines(["sim", "--board", "stm32", "--allow-unsigned"]);
    expect(r.code).toBe(2);
    expect(r.err.join("\n")).toMatch(/--board takes esp32, w800, nuvoton, got stm32/);
  });
});
