/**
 * The desktop simulator end to end: firmware images that are real programs, run on the XS
 * engine by hosts/sim/device.ts, updating themselves from the local cloud (cloud/server.ts) over
 * the embedded broker and, where installed, Mosquitto. The demo's own scenarios run here too.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFirmware, DEMO_APP } from "../hosts/sim/firmware.ts";
import { writeSigningKeys } from "../cli/signing.ts";
import { flashDevice } from "../hosts/sim/board.ts";
import { SimulatedDevice, type DeviceEvent } from "../hosts/sim/device.ts";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";
import { demoCommand } from "../cli/demo.ts";
import { simCommand } from "../cli/sim.ts";
import { createServer } from "node:net";
import { VirtualTerminal } from "./terminal.ts";
import { runCliLines } from "./support/cli.ts";
import { mosquittoPath, startMosquitto, type TestMosquitto } from "./support/mosquitto.ts";

const work = mkdtempSync(join(tmpdir(), "xs-ota-sim-test-"));
const { privatePath: keyPath, publicPath, publicPem } = writeSigningKeys(work);

async function firmware(entry: string, version: string): Promise<string> {
  const out = join(work, `${version}-${entry.split("/").pop()}.bin`);
  await buildFirmware({ entry, version, out });
  return out;
}

async function until(condition: () => boolean, what: string, ms = 20_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

const terminal = (s: string | undefined) => s === "SUCCEEDED" || s === "FAILED" || s === "REJECTED";

async function createJob(cloud: Cloud, body: Record<string, unknown>): Promise<void> {
  const r = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ key: keyPath, ...body }) });
  expect(r.status, await r.clone().text()).toBe(201);
}

function status(cloud: Cloud, jobId: string, thing: string) {
  return cloud.jobs.describeJob(jobId)?.executions.find((e) => e.thingName === thing);
}

let mosquitto: TestMosquitto | undefined;
const brokers = [
  { name: "aedes", url: () => undefined },
  { name: "mosquitto", url: () => mosquitto?.url, skip: mosquittoPath() === undefined },
];

beforeAll(async () => {
  if (mosquittoPath()) mosquitto = await startMosquitto();
});

afterAll(async () => {
  await mosquitto?.close();
  rmSync(work, { recursive: true, force: true });
});

describe.each(brokers)("the demo's scenarios [$name]", ({ url, skip }) => {
  it.skipIf(skip === true)("npm start's demo: job 1 over HTTP SUCCEEDED, job 2 over MQTT rolls back and FAILED; exit 0; on a terminal, the bar hides no line", async () => {
    const out: string[] = [];
    const broker = url();
    // stdout and the progress bar share one terminal, as in `npm start`.
    const term = new VirtualTerminal();
    const print = (l: string) => {
      out.push(l);
      term.write(`${l}\n`);
    };
    const code = await demoCommand(broker ? ["--broker", broker] : [], { out: print, err: print }, { stream: term as unknown as NodeJS.WriteStream });
    expect(code, out.join("\n")).toBe(0);
    expect(term.screen()).toEqual(out);
    expect(term.bars, "the bar was drawn").toBeGreaterThan(0);
    const rows = out.filter((l) => /^job-\d/.test(l));
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/^job-1\s+HTTP\s+\d+\s+[\d.]+ s\s+SUCCEEDED\s+1\.0\.1\s+as expected$/);
    expect(rows[1]).toMatch(/^job-2\s+MQTT\s+\d+\s+[\d.]+ s\s+FAILED \(self-test\): the app's self-test returned false\s+1\.0\.1\s+as expected$/);
    // A patch from 1.0.1 (which the device runs), a small part of the image.
    expect(rows[2]).toMatch(/^job-3\s+MQTT, patch\s+\d+\s+[\d.]+ s\s+SUCCEEDED\s+1\.0\.3\s+as expected$/);
    expect(Number(/\s(\d+)\s/.exec(rows[2].slice(5))?.[1])).toBeLessThan(Number(/\s(\d+)\s/.exec(rows[0].slice(5))?.[1]) / 20);
    expect(out).toContain("  dev-1  sensor on I2C 0x44 does not answer");
    expect(out.some((l) => /boot 3: bootloader starts ota_0, firmware 1\.0\.2 \(a trial boot/.test(l))).toBe(true);
    expect(out.some((l) => /boot 4: bootloader starts ota_1, firmware 1\.0\.1$/.test(l))).toBe(true);
  });
});

describe.each(brokers)("simulated devices on XS [$name]", ({ name, url, skip }) => {
  let cloud: Cloud;
  let v100: string;
  let v101: string;
  const devices: SimulatedDevice[] = [];

  beforeAll(async () => {
    if (skip) return;
    const broker = url();
    cloud = await startCloud({ dataDir: join(work, `cloud-${name}`), httpsPort: 0, controlPort: 0, ...(broker ? { brokerUrl: broker } : { mqttPort: 0, mqttsPort: 0 }) });
    v100 = await firmware(DEMO_APP.passes, "1.0.0");
    v101 = await firmware(DEMO_APP.passes, "1.0.1");
  });

  afterAll(async () => {
    for (const d of devices) await d.stop();
    await cloud?.close();
  });

  function device(thing: string, firmwarePath = v100): { device: SimulatedDevice; events: DeviceEvent[] } {
    const dir = join(work, `${name}-${thing}`);
    flashDevice(dir, new Uint8Array(readFileSync(firmwarePath)));
    const d = new SimulatedDevice({ dir, thing, brokerUrl: cloud.urls.mqtt, keys: { [SIGNER_LABEL]: publicPem }, config: { ca: cloud.caCert, progressInterval: 16 * 1024 }, crashDelay: 50 });
    const events: DeviceEvent[] = [];
    d.on("event", (e) => events.push(e));
    devices.push(d);
    return { device: d, events };
  }

  const logged = (events: DeviceEvent[], text: RegExp) => events.some((e) => e.type === "log" && text.test(e.message));

  it.skipIf(skip === true)("a device that vanishes mid-download leaves its job IN_PROGRESS; back on, it resumes from flash and the job SUCCEEDED", async () => {
    const thing = `vanish-${name}`;
    const { device: d, events } = device(thing);
    await d.start();
    await until(() => logged(events, /^app 1\.0\.0 running/), "the device to start");
    // Power goes at the device's second progress report (the first one made the job IN_PROGRESS,
    // and part of the image is in flash), while the firmware waits for that log call to return.
    let reports = 0;
    let cut = false;
    d.on("event", (e) => {
      if (!cut && e.type === "log" && /^job vanish-\w+: [1-9]\d*\/\d+ bytes$/.test(e.message) && ++reports === 2) {
        cut = true;
        void d.stop();
      }
    });
    await createJob(cloud, { thing, file: v101, protocol: "http", jobId: `vanish-${name}` });
    await until(() => cut, "the power cut");
    await d.settled();
    await new Promise((r) => setTimeout(r, 300));
    expect(status(cloud, `vanish-${name}`, thing)?.status).toBe("IN_PROGRESS");
    await d.start();
    await until(() => terminal(status(cloud, `vanish-${name}`, thing)?.status), "the job to end");
    expect(status(cloud, `vanish-${name}`, thing)?.status).toBe("SUCCEEDED");
    expect(logged(events, /^job vanish-\w+: resuming \d+ bytes over HTTP into ota_1$/)).toBe(true);
    await until(() => d.bootInfo()?.state === "valid", "the confirm");
    expect(d.version).toBe("1.0.1");
  });

  it.skipIf(skip === true)("a new firmware that crashes before confirming gets one more trial boot, is rolled back again, and the old one reports FAILED", async () => {
    const entry = join(work, "crashes.ts");
    writeFileSync(entry, 'import { simBoard } from "xs-ota/sim/host";\nsimBoard().ports.system.log("info", "about to crash");\nthrow new Error("boom at start-up");\n');
    const crashing = await firmware(entry, "1.0.1");
    const thing = `crash-${name}`;
    const { device: d, events } = device(thing);
    await d.start();
    await until(() => logged(events, /^app 1\.0\.0 running/), "the device to start");
    await createJob(cloud, { thing, file: crashing, protocol: "mqtt", jobId: `crash-${name}` });
    await until(() => terminal(status(cloud, `crash-${name}`, thing)?.status), "the job to end");
    const execution = status(cloud, `crash-${name}`, thing);
    expect(execution?.status).toBe("FAILED");
    expect(String(execution?.statusDetails?.["reason"])).toMatch(/^boot\/rolled-back: the trial boot of the new image in ota_1 was interrupted twice/);
    expect(events.some((e) => e.type === "log" && e.level === "error" && /boom at start-up/.test(e.message))).toBe(true);
    const boots = events.filter((e): e is Extract<DeviceEvent, { type: "boot" }> => e.type === "boot");
    expect(boots.map((b) => `${b.slot} ${b.version}`)).toEqual(["ota_0 1.0.0", "ota_1 1.0.1", "ota_0 1.0.0", "ota_1 1.0.1", "ota_0 1.0.0"]);
    expect(boots[2]?.bootloader.some((l) => /-> ABORTED/.test(l))).toBe(true);
    expect(boots[4]?.bootloader.some((l) => /-> ABORTED/.test(l))).toBe(true);
    expect(d.version).toBe("1.0.0");
  });

  it.skipIf(skip === true)("an EnOS device on XS: the offered firmware is pushed, installed, and informed", async () => {
    const thing = `enos-${name}`;
    const dir = join(work, `enos-${name}`);
    const run = runCliLines(["sim", "--thing", thing, "--firmware", v100, "--allow-unsigned", "--cloud", "enos", "--product", `pk-${name}`, "--file-base", cloud.urls.http, "--broker", cloud.urls.mqtt, "--dir", dir, "--until", "1.0.1"]);
    await until(() => cloud.enos.device(`pk-${name}`, thing)?.version === "1.0.0", "the device to inform its version");
    await createJob(cloud, { thing, file: v101, format: "enos", productKey: `pk-${name}`, jobId: `enos-${name}` });
    const r = await run;
    expect(r.code, [...r.out, ...r.err].join("\n")).toBe(0);
    expect(r.out).toContain(`${thing}  boot 2: ota_1 runs 1.0.1 (bootloader: otadata[1] seq 2 -> PENDING_VERIFY)`);
    expect(r.out.at(-1)).toMatch(/^1 on 1\.0\.1; 1 updated, 0 halted/);
    await until(() => cloud.enos.device(`pk-${name}`, thing)?.version === "1.0.1", "the inform of 1.0.1");
  });

  it.skipIf(skip === true)("a registered EnOS device on XS logs in and fetches an enos-connect:// offer through the HTTP broker", async () => {
    const thing = `enos-reg-${name}`;
    const product = `pkr-${name}`;
    const reg = await fetch(`${cloud.urls.control}/enos/devices`, { method: "POST", body: JSON.stringify({ productKey: product, deviceKey: thing }) });
    const { deviceSecret } = (await reg.json()) as { deviceSecret: string };
    const dir = join(work, `enos-reg-${name}`);
    const run = runCliLines(["sim", "--thing", thing, "--firmware", v100, "--allow-unsigned", "--cloud", "enos", "--product", product, "--device-secret", deviceSecret, "--file-service", cloud.urls.http, "--broker", cloud.urls.mqtt, "--dir", dir, "--until", "1.0.1"]);
    await until(() => cloud.enos.device(product, thing)?.version === "1.0.0", "the device to inform its version");
    await createJob(cloud, { thing, file: v101, format: "enos", productKey: product, jobId: `enos-reg-${name}` });
    const r = await run;
    expect(r.code, [...r.out, ...r.err].join("\n")).toBe(0);
    expect(r.out.at(-1)).toMatch(/^1 on 1\.0\.1; 1 updated, 0 halted/);
    expect(cloud.enos.fileRequests.some((q) => q.method === "POST" && q.path === `/auth/${product}/${thing}` && q.status === 200)).toBe(true);
    expect(cloud.enos.fileRequests.filter((q) => q.path === `/multipart/sys/${product}/${thing}/file/download`).every((q) => q.status === 200 || q.status === 206)).toBe(true);
  });

  it.skipIf(skip === true)("xs-ota sim --count 3 --until 1.0.1: a fleet job updates every device", async () => {
    const dir = join(work, `fleet-${name}`);
    const run = runCliLines(["sim", "--thing", `fleet-${name}`, "--count", "3", "--firmware", v100, "--key", publicPath, "--broker", cloud.urls.mqtt, "--ca", cloud.caPath, "--dir", dir, "--until", "1.0.1"]);
    await until(() => [1, 2, 3].every((i) => cloud.jobs.log.some((l) => l.thing === `fleet-${name}-${i}`)), "the fleet to ask for jobs");
    await createJob(cloud, { things: [1, 2, 3].map((i) => `fleet-${name}-${i}`), file: v101, protocol: "http", jobId: `fleet-${name}` });
    const r = await run;
    expect(r.code, [...r.out, ...r.err].join("\n")).toBe(0);
    expect(r.out.at(-1)).toMatch(/^3 on 1\.0\.1; 3 updated, 0 halted, [\d.]+ s$/);
    // --until waits for each device's report to be answered: the cloud has them all.
    expect([1, 2, 3].map((i) => status(cloud, `fleet-${name}`, `fleet-${name}-${i}`)?.status)).toEqual(["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]);
  });
});

describe("xs-ota bundle, sim and demo as commands", () => {
  it("bundle then image pack: an image the bootloader takes, whose program is the bundle", async () => {
    const entry = join(work, "hello.ts");
    writeFileSync(entry, 'import { simBoard } from "xs-ota/sim/host";\nsimBoard().ports.system.log("info", "hello");\n');
    const js = join(work, "hello.js");
    const bundled = await runCliLines(["bundle", entry, "-o", js]);
    expect(bundled.code, bundled.err.join("\n")).toBe(0);
    expect(readFileSync(js, "utf8")).toContain('"hello"');
    const bin = join(work, "hello.bin");
    expect((await runCliLines(["image", "pack", "--version", "2.0.0", "-o", bin, js])).code).toBe(0);
    const info = await runCliLines(["image", "info", bin]);
    expect(info.code).toBe(0);
    expect(info.out).toContain("version: 2.0.0");
  });

  it("bundle reports an app that does not resolve, and its usage", async () => {
    const entry = join(work, "broken.ts");
    writeFileSync(entry, 'import { nothing } from "xs-ota/no/such/module";\nnothing();\n');
    const r = await runCliLines(["bundle", entry, "-o", join(work, "broken.js")]);
    expect(r.code).toBe(1);
    expect(r.err.join("\n")).toMatch(/xs-ota\/no\/such\/module/);
    expect((await runCliLines(["bundle", entry])).code).toBe(2);
  });

  it("sim refuses to run without a code-signing key, or on a firmware file it cannot read", async () => {
    const noKey = await runCliLines(["sim", "--dir", join(work, "nokey")]);
    expect(noKey.code).toBe(2);
    expect(noKey.err[0]).toMatch(/--key PUB\.pem.*--allow-unsigned/);
    const missing = await runCliLines(["sim", "--key", publicPath, "--firmware", join(work, "missing.bin"), "--dir", join(work, "missing")]);
    expect(missing.code).toBe(1);
    expect(missing.err[0]).toMatch(/^error: .*missing\.bin/);
    expect((await runCliLines(["sim", "--key", publicPath, "--count", "0"])).code).toBe(2);
  });

  it("a device whose flash holds no bootable image halts, and sim --until says so (exit 1)", async () => {
    const image = new Uint8Array(readFileSync(await firmware(DEMO_APP.passes, "1.0.0")));
    image[image.length - 40] ^= 0xff; // the checksum no longer matches
    const bad = join(work, "bad.bin");
    writeFileSync(bad, image);
    const r = await runCliLines(["sim", "--thing", "brick", "--firmware", bad, "--key", publicPath, "--broker", "mqtt://127.0.0.1:9", "--dir", join(work, "brick"), "--until", "1.0.0"]);
    expect(r.code).toBe(1);
    expect(r.out.some((l) => /^brick {2}halted: ota_0 is not bootable: .*; ota_1 is not bootable: .*no bootable app partition$/.test(l))).toBe(true);
    expect(r.out.at(-1)).toMatch(/^1 on \(none\); 0 updated, 1 halted/);
  });

  it("sim with no broker listening says once to start `xs-ota cloud`; once the cloud is up, the device connects", async () => {
    const port = await closedPort();
    const err: string[] = [];
    let stop = () => {};
    const stopped = new Promise<void>((r) => (stop = r));
    const timer = setTimeout(stop, 30_000);
    let cloud: Cloud | undefined;
    const seen: string[] = [];
    const io = {
      out: () => undefined,
      err: (l: string) => {
        err.push(l);
        // What the hint says to do: start the cloud where the device looks for it.
        if (l.startsWith("cannot reach"))
          void startCloud({ dataDir: join(work, "lonely-cloud"), mqttPort: port, mqttsPort: 0, httpsPort: 0, controlPort: 0, onEvent: (e) => (seen.push(e), e === "lonely connected" && stop()) }).then((c) => (cloud = c));
      },
    };
    const code = await simCommand(["--thing", "lonely", "--firmware", await firmware(DEMO_APP.passes, "1.0.0"), "--key", publicPath, "--broker", `mqtt://127.0.0.1:${port}`, "--dir", join(work, "lonely")], io, { stopped });
    clearTimeout(timer);
    await cloud?.close();
    expect(code).toBe(0);
    expect(err.filter((l) => l.startsWith("cannot reach"))).toEqual([`cannot reach the broker at mqtt://127.0.0.1:${port}: start it with \`xs-ota cloud\` (or give --broker)`]);
    expect(seen).toContain("lonely connected");
  });

  it("demo refuses arguments it does not know", async () => {
    const err: string[] = [];
    expect(await demoCommand(["--fast"], { out: () => undefined, err: (l) => err.push(l) })).toBe(2);
    expect(err[1]).toMatch(/^usage: xs-ota demo/);
  });
});
