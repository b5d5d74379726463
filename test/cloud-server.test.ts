/**
 * cloud/server.ts + the `xs-ota cloud` / `xs-ota job create|list|describe` commands: a job made
 * through the control API updates a simulated device (HTTPS presigned and MQTT streams), jobs
 * survive a restart of the cloud on the same data directory, and the CLI explains a missing cloud.
 * On an external broker (`brokerUrl`, `xs-ota cloud --broker`): a job round trip through a private
 * Mosquitto (skipped without a mosquitto binary), and a clear failure when the broker is unreachable.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get } from "node:https";
import { createServer, type AddressInfo } from "node:net";
import { connectAsync } from "mqtt";
import type { Io } from "../cli/main.ts";
import { cloudCommand } from "../cli/cloud.ts";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";
import { appImage } from "./contract/boot-fixture.ts";
import { SimDevice, until } from "./support/sim-device.ts";
import { runCli } from "./support/cli.ts";
import { mosquittoPath, startMosquitto } from "./support/mosquitto.ts";

const root = mkdtempSync(join(tmpdir(), "xs-ota-cloud-server-"));
const dataDir = join(root, "data");
const firmware = join(root, "app-1.0.1.bin");
const keyPath = join(root, "signing-key.pem");
const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
let cloud: Cloud | undefined;
const devices: SimDevice[] = [];

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runCli(args);
}

const start = () => startCloud({ dataDir, mqttPort: 0, mqttsPort: 0, httpsPort: 0, httpPort: 0, controlPort: 0 });

beforeAll(async () => {
  writeFileSync(firmware, appImage("1.0.1", 20000));
  writeFileSync(keyPath, privateKey.export({ type: "pkcs8", format: "pem" }));
  cloud = await start();
});
afterAll(async () => {
  for (const d of devices) await d.powerCut();
  await cloud?.close();
  rmSync(root, { recursive: true, force: true });
});

function device(thing: string, c: Cloud): SimDevice {
  const d = new SimDevice({ thing, brokerUrl: c.urls.mqtt, keys: { [SIGNER_LABEL]: publicPem }, config: { ca: c.caCert } });
  devices.push(d);
  return d;
}

describe("xs-ota cloud + job create/list/describe", () => {
  it("job create (HTTPS, signed) updates a device to 1.0.1; describe shows SUCCEEDED; list lists it", async () => {
    const c = cloud as Cloud;
    const created = await run(["job", "create", "--thing", "srv-a", "--file", firmware, "--key", keyPath, "--job-id", "ota-http", "--control", c.urls.control]);
    expect(created.err).toBe("");
    expect(created.code).toBe(0);
    expect(created.out).toContain("created job ota-http");
    expect(created.out).toContain("${aws:iot:s3-presigned-url-v2:fw/ota-http.bin}");
    expect(created.out).toContain("sig-sha256-ecdsa");

    const d = device("srv-a", c);
    await d.start();
    await until(() => c.jobs.execution("srv-a", "ota-http")?.status === "SUCCEEDED", 20_000, "SUCCEEDED");
    await d.settled();
    expect(d.version).toBe("1.0.1");

    const described = await run(["job", "describe", "ota-http", "--control", c.urls.control]);
    expect(described.code).toBe(0);
    expect(described.out).toContain("job ota-http: COMPLETED");
    expect(described.out).toMatch(/srv-a +SUCCEEDED/);

    const listed = await run(["job", "list", "--control", c.urls.control]);
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(/ota-http\s+COMPLETED\s+srv-a/);
  }, 30_000);

  it("job create --protocol mqtt streams the firmware over MQTT", async () => {
    const c = cloud as Cloud;
    const created = await run(["job", "create", "--thing", "srv-b", "--file", firmware, "--key", keyPath, "--protocol", "mqtt", "--job-id", "ota-mqtt", "--control", c.urls.control]);
    expect(created.code).toBe(0);
    expect(created.out).toContain('"streamname": "ota-mqtt"');
    const d = device("srv-b", c);
    await d.start();
    await until(() => c.jobs.execution("srv-b", "ota-mqtt")?.status === "SUCCEEDED", 20_000, "SUCCEEDED");
    await d.settled();
    expect(d.version).toBe("1.0.1");
  }, 30_000);

  it("refusals: a duplicate job ID, a file that is not an image, an unknown job", async () => {
    const c = cloud as Cloud;
    const dup = await run(["job", "create", "--thing", "srv-a", "--file", firmware, "--job-id", "ota-http", "--control", c.urls.control]);
    expect(dup.code).toBe(1);
    expect(dup.err).toContain("already exists");
    const bad = await run(["job", "create", "--thing", "srv-a", "--file", keyPath, "--control", c.urls.control]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("not an ESP32 or W800 image");
    const none = await run(["job", "describe", "nope", "--control", c.urls.control]);
    expect(none.code).toBe(1);
    expect(none.err).toContain("no job nope");
  });

  it("a restarted cloud on the same data directory still has the jobs and their files", async () => {
    for (const d of devices.splice(0)) await d.powerCut();
    await cloud?.close();
    cloud = await start();
    const c = cloud;
    const described = await run(["job", "describe", "ota-http", "--control", c.urls.control]);
    expect(described.code).toBe(0);
    expect(described.out).toMatch(/srv-a +SUCCEEDED/);
    // The firmware was re-offered: its presigned URL serves the bytes over HTTPS with the CA.
    const status = await new Promise<number>((resolve, reject) => {
      get(c.files.presign("fw/ota-http.bin", { expiresIn: 60 }), { ca: c.caCert }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on("error", reject);
    });
    expect(status).toBe(200);
    const res = await run(["job", "list", "--control", c.urls.control]);
    expect(res.out).toContain("ota-mqtt");
  });

  it("a job is stored only after its firmware: when the firmware cannot be written there is no job", async () => {
    const c = cloud as Cloud;
    // A directory where the firmware's file goes: the rename onto it fails.
    mkdirSync(join(dataDir, "files", "no-disk.bin", "x"), { recursive: true });
    const post = await fetch(`${c.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ thing: "srv-z", file: firmware, key: keyPath, jobId: "no-disk" }) });
    expect(post.status).toBe(400);
    expect((await fetch(`${c.urls.control}/jobs/no-disk`)).status).toBe(404);
    rmSync(join(dataDir, "files", "no-disk.bin"), { recursive: true });
  });

  it("the offer a cut creation left behind (its files, no job) does not block creating that job again", async () => {
    const record = { jobId: "cut-1", format: "aws", protocol: "mqtt", targets: ["srv-z"], version: "1.0.1", document: {} };
    copyFileSync(firmware, join(dataDir, "files", "cut-1.bin"));
    writeFileSync(join(dataDir, "files", "cut-1.json"), JSON.stringify(record));
    for (const d of devices.splice(0)) await d.powerCut();
    await cloud?.close();
    cloud = await start();
    const post = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ thing: "srv-z", file: firmware, key: keyPath, jobId: "cut-1", protocol: "mqtt" }) });
    expect(post.status).toBe(201);
    const again = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ thing: "srv-z", file: firmware, key: keyPath, jobId: "cut-1", protocol: "mqtt" }) });
    expect(again.status).toBe(409);
  });

  it("nrf, zerynth and enos documents", async () => {
    const c = cloud as Cloud;
    const nrf = await run(["job", "create", "--thing", "srv-n", "--file", firmware, "--format", "nrf", "--job-id", "ota-nrf", "--control", c.urls.control]);
    expect(nrf.code).toBe(0);
    expect(nrf.out).toContain('"operation": "app_fw_update"');
    expect(nrf.out).toContain('"fwversion": "1.0.1"');
    const z = await run(["job", "create", "--thing", "srv-z", "--file", firmware, "--format", "zerynth", "--job-id", "ota-z", "--control", c.urls.control]);
    expect(z.code).toBe(0);
    expect(z.out).toContain('"bc_url": "${aws:iot:s3-presigned-url-v2:fw/ota-z.bin}"');
    const e = await run(["job", "create", "--thing", "srv-e", "--file", firmware, "--format", "enos", "--job-id", "ota-enos", "--product", "pk1", "--control", c.urls.control]);
    expect(e.code).toBe(0);
    expect(e.out).toContain('"fileUrl": "/pk1/ota/ota-enos.bin"');
    const mqttNrf = await run(["job", "create", "--thing", "srv-n", "--file", firmware, "--format", "nrf", "--protocol", "mqtt", "--control", c.urls.control]);
    expect(mqttNrf.code).toBe(1);
    expect(mqttNrf.err).toContain("has no MQTT download");
  });

  it("xs-ota cloud starts, prints its URLs and the CA path, and stops", async () => {
    const out: string[] = [];
    const io: Io = { out: (l) => out.push(l), err: (l) => out.push(l) };
    let seen: Cloud | undefined;
    const code = await cloudCommand(["--data", join(root, "cli-data"), "--mqtt-port", "0", "--mqtts-port", "0", "--control-port", "0", "--https-port", "0"], io, {
      stopped: async (c) => {
        seen = c;
        const res = await run(["job", "list", "--control", c.urls.control]);
        expect(res.out).toBe("no jobs");
      },
    });
    expect(code).toBe(0);
    expect(out.join("\n")).toContain(`control  ${seen?.urls.control ?? "?"}`);
    expect(out).toContain(`mqtts    ${seen?.urls.mqtts ?? "?"}  (mutual TLS: thing certificates from xs-ota thing create)`);
    expect(out.join("\n")).toContain(join(root, "cli-data", "tls", "ca.pem"));
    expect(out.at(-1)).toBe("cloud stopped");
  });

  it("job create with the cloud down exits 1 with the reason", async () => {
    const url = (cloud as Cloud).urls.control;
    await cloud?.close();
    cloud = undefined;
    const res = await run(["job", "create", "--thing", "srv-a", "--file", firmware, "--control", url]);
    expect(res.code).toBe(1);
    expect(res.err).toContain(`no xs-ota cloud at ${url}: start one with \`xs-ota cloud\``);
  });
});

/** A 127.0.0.1 port nothing listens on (just released by the kernel). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  const port = await new Promise<number>((resolve) => probe.listen(0, "127.0.0.1", () => resolve((probe.address() as AddressInfo).port)));
  await new Promise((r) => probe.close(r));
  return port;
}

describe("the cloud on an external broker (brokerUrl, xs-ota cloud --broker)", () => {
  it.skipIf(mosquittoPath() === undefined)("startCloud({ brokerUrl }) on Mosquitto: a device's job requests are answered through it", async () => {
    const m = await startMosquitto();
    let c: Cloud | undefined;
    let dev: Awaited<ReturnType<typeof connectAsync>> | undefined;
    try {
      c = await startCloud({ dataDir: join(root, "mosquitto-data"), brokerUrl: m.url, httpsPort: 0, httpPort: 0, controlPort: 0 });
      expect(c.urls.mqtt).toBe(m.url);
      const created = await run(["job", "create", "--thing", "srv-m", "--file", firmware, "--key", keyPath, "--job-id", "ota-mosquitto", "--control", c.urls.control]);
      expect(created.code).toBe(0);

      // The device side, as a plain MQTT client of the same Mosquitto.
      dev = await connectAsync(m.url, { clientId: "srv-m", protocolVersion: 4, reconnectPeriod: 0 });
      const client = dev;
      const base = "$aws/things/srv-m/jobs";
      const answers = new Map<string, Record<string, unknown>[]>();
      client.on("message", (topic, payload) => answers.set(topic, [...(answers.get(topic) ?? []), JSON.parse(payload.toString("utf8")) as Record<string, unknown>]));
      await client.subscribeAsync([`${base}/$next/get/+`, `${base}/ota-mosquitto/update/+`], { qos: 1 });
      const ask = async (topic: string, request: Record<string, unknown>, answer: string): Promise<Record<string, unknown>> => {
        const before = answers.get(answer)?.length ?? 0;
        await client.publishAsync(topic, JSON.stringify(request), { qos: 1 });
        await until(() => (answers.get(answer)?.length ?? 0) > before || answers.has(answer.replace(/accepted$/, "rejected")), 5000, answer);
        expect(answers.get(answer.replace(/accepted$/, "rejected"))).toBeUndefined();
        return answers.get(answer)?.at(-1) ?? {};
      };

      const next = await ask(`${base}/$next/get`, { clientToken: "t1" }, `${base}/$next/get/accepted`);
      expect(next["clientToken"]).toBe("t1");
      const execution = next["execution"] as { jobId: string; status: string; jobDocument: { afr_ota: { files: { update_data_url: string }[] } } };
      expect(execution.jobId).toBe("ota-mosquitto");
      expect(execution.status).toBe("QUEUED");
      // The placeholder became a presigned URL of this cloud's HTTPS file server.
      expect(execution.jobDocument.afr_ota.files[0]?.update_data_url.startsWith(`${c.urls.https}/`)).toBe(true);

      await ask(`${base}/ota-mosquitto/update`, { status: "IN_PROGRESS", statusDetails: { receive: "0/20" } }, `${base}/ota-mosquitto/update/accepted`);
      expect(c.jobs.execution("srv-m", "ota-mosquitto")?.status).toBe("IN_PROGRESS");
      await ask(`${base}/ota-mosquitto/update`, { status: "SUCCEEDED", statusDetails: { reason: "accepted v1.0.1" } }, `${base}/ota-mosquitto/update/accepted`);
      const described = await run(["job", "describe", "ota-mosquitto", "--control", c.urls.control]);
      expect(described.out).toContain("job ota-mosquitto: COMPLETED");
      expect(described.out).toMatch(/srv-m +SUCCEEDED/);
    } finally {
      await dev?.endAsync();
      await c?.close();
      await m.close();
    }
  });

  it("an unreachable brokerUrl fails to start with the URL and the reason", async () => {
    const url = `mqtt://127.0.0.1:${await closedPort()}`;
    await expect(startCloud({ dataDir: join(root, "unreachable-data"), brokerUrl: url, httpsPort: 0, httpPort: 0, controlPort: 0 })).rejects.toThrow(
      new RegExp(`^cannot reach the MQTT broker at ${url.replace(/\./g, "\\.")}: .*ECONNREFUSED`),
    );
    const out: string[] = [];
    const io: Io = { out: (l) => out.push(l), err: (l) => out.push(l) };
    const code = await cloudCommand(["--data", join(root, "unreachable-data"), "--broker", url, "--control-port", "0", "--https-port", "0"], io, {
      stopped: () => Promise.reject(new Error("the cloud must not start")),
    });
    expect(code).toBe(1);
    expect(out.join("\n")).toContain(`error: cannot start the cloud: cannot reach the MQTT broker at ${url}: `);
  });

  it("xs-ota cloud refuses --broker with --mqtt-port, and a --broker that is not a URL (usage, exit 2)", async () => {
    for (const args of [
      ["--broker", "mqtt://127.0.0.1:1883", "--mqtt-port", "0"],
      ["--mqtt-port", "0", "--broker", "mqtt://127.0.0.1:1883"],
      ["--broker", "127.0.0.1:1883"],
      ["--broker", "mqtt://127.0.0.1:1883", "--mqtts-port", "0"],
    ]) {
      const out: string[] = [];
      const io: Io = { out: (l) => out.push(l), err: (l) => out.push(l) };
      const code = await cloudCommand(["--data", join(root, "usage-data"), ...args], io, { stopped: () => Promise.reject(new Error("the cloud must not start")) });
      expect(code, args.join(" ")).toBe(2);
      expect(out.at(-1)).toContain("usage: xs-ota cloud [--data DIR] [--mqtt-port N | --broker URL]");
    }
  });
});
