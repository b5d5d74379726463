/**
 * Proof that the Moddable ESP32 host (hosts/esp32) updates a device: its own source, bundled for
 * the real XS engine with Moddable's modules replaced by faithful stand-ins (test/moddable/fakes:
 * NOR flash partitions as ESP-IDF exposes them, NVS-limited Preference, crypt Digest, Timer/Time,
 * the ECMA-419 HTTP and MQTT clients, System.restart), runs whole updates against the local
 * cloud: HTTPS download, signature, select, restart through the simulated ESP-IDF bootloader,
 * self-test, confirm; and a release whose self-test fails rolls back to the previous slot.
 * MQTT runs over the cloud's mutual-TLS listener: the session is made with the DER the host put
 * in its TLS socket's `secure` dictionary (test/moddable/device.ts), so the broker's handshake
 * checks the client certificate and key the host provisioned.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleForXs } from "../hosts/sim/bundle.ts";
import { flashDevice, sha256 } from "../hosts/sim/board.ts";
import { packImage } from "../modules/esp-idf/image.ts";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";
import { issueThingCertificate, makeLocalCa } from "../cloud/tls.ts";
import { MODDABLE_FAKES, MODDABLE_GLOBALS, PREFERENCE_WITH_CUTS } from "./moddable/aliases.ts";
import { XsWorker } from "../hosts/sim/xsnap.ts";
import { Esp32TestDevice, type Esp32DeviceEvent } from "./moddable/device.ts";
import { esp32AppPayload } from "./moddable/program.ts";
import { MODDABLE_RUNNER } from "./contract/vitest.ts";

const APPS = fileURLToPath(new URL("./moddable/apps/", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "xs-ota-esp32-test-"));
const signing = generateKeyPairSync("ec", { namedCurve: "P-256" });
const keyPath = join(work, "signing-key.pem");
writeFileSync(keyPath, signing.privateKey.export({ type: "pkcs8", format: "pem" }));
const signerPem = signing.publicKey.export({ type: "spki", format: "pem" }).toString();

/**
 * A firmware image whose payload starts the app. On the device-faithful engine the payload is the
 * app bundled; on Moddable's XS (npm run test:moddable) the app is linked into the program and
 * the payload only imports it.
 */
async function firmware(entry: "passes" | "fails", version: string): Promise<string> {
  const source = `import ${JSON.stringify(MODDABLE_GLOBALS)};\nimport ${JSON.stringify(join(APPS, `${entry}.ts`))};\n`;
  const script = MODDABLE_RUNNER ? esp32AppPayload(entry) : await bundleForXs(source, { minify: true, aliases: MODDABLE_FAKES });
  const path = join(work, `${version}.bin`);
  writeFileSync(path, packImage({ version, payload: new TextEncoder().encode(script), sha256 }));
  return path;
}

let device: Esp32TestDevice;
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function until(condition: () => boolean, what: string, ms = 40_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}; the device's events:\n${device?.events.map((e) => JSON.stringify(e)).join("\n")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const terminal = (s: string | undefined) => s === "SUCCEEDED" || s === "FAILED" || s === "REJECTED";
const boots = (events: Esp32DeviceEvent[]) => events.flatMap((e) => (e.type === "boot" ? [`${e.slot} ${e.version}`] : []));

describe(`the esp32 host on XS, against Moddable stand-ins and the local cloud${MODDABLE_RUNNER ? " [moddable]" : ""}`, () => {
  const thing = "esp32-dev-1";
  let cloud: Cloud;
  let v100: string;
  let v101: string;
  let v102: string;

  beforeAll(async () => {
    cloud = await startCloud({ dataDir: join(work, "cloud"), httpsPort: 0, controlPort: 0, mqttPort: 0, mqttsPort: 0 });
    // The device's MQTT identity as AWS hands it out: an RSA key (Moddable's TLS signs with RSA
    // only) in PKCS#1 PEM, which the host must turn into the PKCS#8 DER Moddable's TLS takes.
    const identity = await issueThingCertificate(await makeLocalCa(join(work, "cloud", "tls")), thing, { keyType: "rsa" });
    const deviceKey = createPrivateKey(identity.key).export({ type: "pkcs1", format: "pem" }).toString();
    v100 = await firmware("passes", "1.0.0");
    v101 = await firmware("passes", "1.0.1");
    v102 = await firmware("fails", "1.0.2");
    const dir = join(work, "device");
    flashDevice(dir, new Uint8Array(readFileSync(v100)));
    device = new Esp32TestDevice({
      dir,
      thing,
      brokerUrl: cloud.urls.mqtts ?? "",
      keys: { [SIGNER_LABEL]: signerPem },
      ca: cloud.caCert,
      mqtt: { host: "127.0.0.1", port: Number(new URL(cloud.urls.mqtts ?? "").port), tls: { ca: cloud.caCert, certificate: identity.cert, privateKey: deviceKey } },
      binary: MODDABLE_RUNNER,
    });
    await device.start();
  }, 120_000);

  afterAll(async () => {
    await device?.stop();
    await cloud?.close();
  });

  async function runJob(jobId: string, file: string): Promise<{ status?: string; statusDetails?: Record<string, unknown> }> {
    const r = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ key: keyPath, thing, file, protocol: "http", jobId }) });
    expect(r.status, await r.clone().text()).toBe(201);
    const execution = () => cloud.jobs.describeJob(jobId)?.executions.find((e) => e.thingName === thing);
    await until(() => terminal(execution()?.status), `${jobId} to end`);
    return execution() ?? {};
  }

  it("boots the factory image from ota_0 and its agent asks AWS IoT Jobs for work over MQTT", async () => {
    await until(() => device.logs().includes("xs-ota info: app 1.0.0 running on ota_0"), "the app to start");
    await until(() => cloud.jobs.log.some((l) => l.thing === thing), "the agent's first request");
    expect(device.logs().filter((l) => /TLS:|crashed/.test(l))).toEqual([]);
  }, 60_000);

  it("job 1 over HTTPS: verified, selected, restarted, self-tested and confirmed: SUCCEEDED on 1.0.1", async () => {
    const execution = await runJob("esp32-job-1", v101);
    expect(execution.status, JSON.stringify(execution)).toBe("SUCCEEDED");
    await until(() => device.bootInfo()?.state === "valid", "the confirm");
    expect(boots(device.events)).toEqual(["ota_0 1.0.0", "ota_1 1.0.1"]);
    expect(device.version).toBe("1.0.1");
    expect(device.logs()).toContain("xs-ota info: self-test passed");
    expect(device.bootInfo()).toMatchObject({ running: "ota_1", next: "ota_1", state: "valid" });
  }, 60_000);

  it("job 2: the new release's self-test fails, it rejects itself, restarts into 1.0.1, which reports FAILED", async () => {
    const execution = await runJob("esp32-job-2", v102);
    expect(execution.status, JSON.stringify(execution)).toBe("FAILED");
    expect(String(execution.statusDetails?.["reason"])).toMatch(/self-test/);
    await until(() => device.slot === "ota_1" && device.logs().filter((l) => l === "xs-ota info: app 1.0.1 running on ota_1").length === 2, "the old image to run again");
    expect(boots(device.events)).toEqual(["ota_0 1.0.0", "ota_1 1.0.1", "ota_0 1.0.2", "ota_1 1.0.1"]);
    expect(device.logs()).toContain("xs-ota error: sensor on I2C 0x44 does not answer");
    expect(device.version).toBe("1.0.1");
    expect(device.bootInfo()).toMatchObject({ running: "ota_1", next: "ota_1", state: "valid" });
  }, 60_000);

  it("a device provisioned with an EC key says why it cannot connect (Moddable's TLS signs with RSA only), and runs on", async () => {
    const dir = join(work, "device-ec");
    flashDevice(dir, new Uint8Array(readFileSync(v100)));
    const identity = await issueThingCertificate(await makeLocalCa(join(work, "cloud", "tls")), "esp32-ec");
    const ec = new Esp32TestDevice({
      dir,
      thing: "esp32-ec",
      brokerUrl: cloud.urls.mqtts ?? "",
      keys: { [SIGNER_LABEL]: signerPem },
      ca: cloud.caCert,
      mqtt: { host: "127.0.0.1", port: Number(new URL(cloud.urls.mqtts ?? "").port), tls: { ca: cloud.caCert, certificate: identity.cert, privateKey: identity.key } },
      binary: MODDABLE_RUNNER,
    });
    try {
      await ec.start();
      const said = () => ec.logs().some((l) => l.startsWith("xs-ota warn: MQTT the device key is an EC key; Moddable's TLS signs the handshake with RSA keys only"));
      const runsOn = () => ec.logs().includes("xs-ota info: app 1.0.0 running on ota_0");
      const start = Date.now();
      // Both lines come from the same boot, but on Moddable's XS each reaches this process on its own.
      while (!(said() && runsOn()) && Date.now() - start < 20_000) await new Promise((r) => setTimeout(r, 20));
      expect(said(), ec.logs().join("\n")).toBe(true);
      expect(runsOn(), ec.logs().join("\n")).toBe(true);
      expect(cloud.jobs.log.some((l) => l.thing === "esp32-ec")).toBe(false);
    } finally {
      await ec.stop();
    }
  }, 60_000);

  it("kept its records in Preference as NVS allows: two copies per key, domains and keys of at most 15 characters", async () => {
    // The job record goes, both copies, once the cloud answered the outcome report.
    const hasJob = () => Boolean(device.nvs.get("xs-ota.a")?.has("ota.job") || device.nvs.get("xs-ota.b")?.has("ota.job"));
    await until(() => !hasJob(), "the job record to be dropped");
    const domains = [...device.nvs.keys()].sort();
    expect(domains.every((d) => d === "xs-ota.a" || d === "xs-ota.b")).toBe(true);
    for (const [domain, records] of device.nvs) {
      expect(domain.length).toBeLessThanOrEqual(15);
      for (const [key, record] of records) {
        expect(key.length).toBeLessThanOrEqual(15);
        expect(record.bytes.length).toBeLessThanOrEqual(4000);
      }
    }
    expect(hasJob()).toBe(false);
    expect(device.logs().filter((l) => /TLS:|crashed/.test(l))).toEqual([]);
  });
});

describe(`the esp32 host as an EnOS device${MODDABLE_RUNNER ? " [moddable]" : ""}`, () => {
  const thing = "esp32-enos-1";
  const product = "pkEsp";
  let cloud: Cloud;
  let enosDevice: Esp32TestDevice;
  const dir = mkdtempSync(join(tmpdir(), "xs-ota-esp32-enos-"));

  beforeAll(async () => {
    cloud = await startCloud({ dataDir: join(dir, "cloud"), httpsPort: 0, controlPort: 0, mqttPort: 0, mqttsPort: 0 });
    const reg = await fetch(`${cloud.urls.control}/enos/devices`, { method: "POST", body: JSON.stringify({ productKey: product, deviceKey: thing }) });
    const { deviceSecret } = (await reg.json()) as { deviceSecret: string };
    const v100 = await firmware("passes", "1.0.0");
    flashDevice(join(dir, "device"), new Uint8Array(readFileSync(v100)));
    enosDevice = new Esp32TestDevice({
      dir: join(dir, "device"),
      thing,
      brokerUrl: cloud.urls.mqtt,
      keys: {},
      ca: cloud.caCert,
      mqtt: { host: "127.0.0.1", port: Number(new URL(cloud.urls.mqtt).port) },
      enos: { productKey: product, deviceSecret, fileService: cloud.urls.http },
      binary: MODDABLE_RUNNER,
    });
    await enosDevice.start();
  }, 120_000);

  afterAll(async () => {
    await enosDevice?.stop();
    await cloud?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("logs in with the EnOS signature its host makes, and updates from an enos-connect:// offer through the HTTP broker (a POST from Moddable's HTTP client)", async () => {
    const informed = (v: string) => () => cloud.enos.device(product, thing)?.version === v;
    const wait = async (ok: () => boolean, what: string) => {
      const start = Date.now();
      while (!ok()) {
        if (Date.now() - start > 40_000) throw new Error(`timed out waiting for ${what}:\n${enosDevice.events.map((e) => JSON.stringify(e)).join("\n")}\nbroker refusals: ${cloud.refusals.join("; ")}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await wait(informed("1.0.0"), "the inform of 1.0.0");
    const v101 = await firmware("passes", "1.0.1");
    const r = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ thing, file: v101, format: "enos", productKey: product, jobId: "esp32-enos-1" }) });
    expect(r.status, await r.clone().text()).toBe(201);
    await wait(informed("1.0.1"), "the inform of 1.0.1");
    await wait(() => enosDevice.bootInfo()?.state === "valid", "the confirm");
    expect(boots(enosDevice.events)).toEqual(["ota_0 1.0.0", "ota_1 1.0.1"]);
    expect(cloud.enos.fileRequests.some((q) => q.method === "POST" && q.path === `/auth/${product}/${thing}` && q.status === 200)).toBe(true);
    expect(cloud.enos.fileRequests.filter((q) => q.path === `/multipart/sys/${product}/${thing}/file/download`).map((q) => q.status)).not.toContain(401);
  }, 90_000);
});

describe("the esp32 host's StateStore over Preference", () => {
  it("a power cut at any NVS operation of a set leaves the old record or the new one, though Preference erases a key before writing it", async () => {
    const entry = `import ${JSON.stringify(join(APPS, "state-cuts.ts"))};\n`;
    const script = await bundleForXs(entry, { aliases: { ...MODDABLE_FAKES, preference: PREFERENCE_WITH_CUTS } });
    const xs = new XsWorker("state-cuts");
    try {
      await xs.evaluate(script);
      const reply = await xs.evaluate("__stateCuts()");
      const result = JSON.parse(new TextDecoder().decode(reply.result)) as Record<"esp32" | "direct", { points: number; lost: number[] }> & { largest: boolean };
      // One Preference.set per record (NVS wear): its erase and its write are the only cut points.
      expect(result.esp32.points).toBe(2);
      expect(result.esp32.lost).toEqual([]);
      expect(result.largest).toBe(true);
      // The control: one Preference.set per record loses it when the cut falls between the erase and the write.
      expect(result.direct.lost).toEqual([2]);
    } finally {
      await xs.close();
    }
  }, 60_000);
});

describe("the esp32 host's sources and build settings", () => {
  const ROOT = fileURLToPath(new URL("../", import.meta.url));
  const settings = (path: string) => readFileSync(join(ROOT, path), "utf8").split("\n").map((l) => l.trim()).filter((l) => /^CONFIG_/.test(l));

  it("type-checks against @moddable/typings without Node's types (tsconfig.esp32.json: the host, the example app, the test firmware)", () => {
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    const r = spawnSync(process.execPath, [tsc, "--noEmit", "--listFiles", "-p", join(ROOT, "tsconfig.esp32.json")], { encoding: "utf8" });
    const output = (r.stdout + r.stderr).split("\n");
    expect(output.filter((l) => /error TS/.test(l))).toEqual([]);
    expect(r.status).toBe(0);
    for (const file of ["hosts/esp32/host.ts", "hosts/esp32/moddable-extra.d.ts", "hosts/esp32/example/main.ts", "test/moddable/apps/app.ts"]) {
      expect(output, `${file} is type-checked`).toContain(join(ROOT, file));
    }
  }, 120_000);

  it("enables ESP-IDF's app rollback and image checks in the sdkconfig fragment, and the example app carries every line of it", () => {
    const host = settings("hosts/esp32/sdkconfig/sdkconfig.defaults");
    expect(host).toContain("CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y");
    expect(host).toContain("CONFIG_BOOTLOADER_SKIP_VALIDATE_ALWAYS=n");
    expect(host).toContain("CONFIG_PARTITION_TABLE_CUSTOM=y");
    const example = settings("hosts/esp32/example/sdkconfig/sdkconfig.defaults");
    expect(host.filter((line) => !example.includes(line))).toEqual([]);
    expect(example.some((l) => /^CONFIG_APP_PROJECT_VER="\d+\.\d+\.\d+"$/.test(l))).toBe(true);
  });
});
