/**
 * cloud/server.ts + the `xs-ota cloud` / `xs-ota job create|list|describe` commands: a job made
 * through the control API updates a simulated device (HTTPS presigned and MQTT streams), jobs
 * survive a restart of the cloud on the same data directory, and the CLI explains a missing cloud.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get } from "node:https";
import type { Io } from "../cli/main.ts";
import { cloudCommand } from "../cli/cloud.ts";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";
import { appImage } from "./contract/boot-fixture.ts";
import { SimDevice, until } from "./support/sim-device.ts";
import { runCli } from "./support/cli.ts";

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

const start = () => startCloud({ dataDir, mqttPort: 0, httpsPort: 0, httpPort: 0, controlPort: 0 });

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
    expect(created.out).toContain("${aws:iot:s3-presigned-url:fw/ota-http.bin}");
    expect(created.out).toContain("sig-sha256-ecdsa");

    const d = device("srv-a", c);
    await d.start();
    await until(() => c.jobs.execution("srv-a", "ota-http")?.status === "SUCCEEDED", 20_000, "SUCCEEDED");
    await d.settled();
    expect(d.version).toBe("1.0.1");

    const described = await run(["job", "describe", "ota-http", "--control", c.urls.control]);
    expect(described.code).toBe(0);
    expect(described.out).toContain("job ota-http: COMPLETED");
    expect(described.out).toMatch(/srv-a: SUCCEEDED/);

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
    expect(bad.err).toContain("not an ESP32 app image");
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
    expect(described.out).toMatch(/srv-a: SUCCEEDED/);
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

  it("nrf, zerynth and enos documents", async () => {
    const c = cloud as Cloud;
    const nrf = await run(["job", "create", "--thing", "srv-n", "--file", firmware, "--format", "nrf", "--job-id", "ota-nrf", "--control", c.urls.control]);
    expect(nrf.code).toBe(0);
    expect(nrf.out).toContain('"operation": "app_fw_update"');
    expect(nrf.out).toContain('"fwversion": "1.0.1"');
    const z = await run(["job", "create", "--thing", "srv-z", "--file", firmware, "--format", "zerynth", "--job-id", "ota-z", "--control", c.urls.control]);
    expect(z.code).toBe(0);
    expect(z.out).toContain('"bc_url": "${aws:iot:s3-presigned-url:fw/ota-z.bin}"');
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
    const code = await cloudCommand(["--data", join(root, "cli-data"), "--mqtt-port", "0", "--control-port", "0", "--https-port", "0"], io, {
      stopped: async (c) => {
        seen = c;
        const res = await run(["job", "list", "--control", c.urls.control]);
        expect(res.out).toBe("no jobs");
      },
    });
    expect(code).toBe(0);
    expect(out.join("\n")).toContain(`control  ${seen?.urls.control ?? "?"}`);
    expect(out.join("\n")).toContain(join(root, "cli-data", "tls", "ca.pem"));
    expect(out.at(-1)).toBe("cloud stopped");
  });

  it("job create with the cloud down exits 1 with the reason", async () => {
    const url = (cloud as Cloud).urls.control;
    await cloud?.close();
    cloud = undefined;
    const res = await run(["job", "create", "--thing", "srv-a", "--file", firmware, "--control", url]);
    expect(res.code).toBe(1);
    expect(res.err).toContain(`no cloud at ${url}: start one with xs-ota cloud`);
  });
});
