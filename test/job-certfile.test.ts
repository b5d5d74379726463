/**
 * `certfile` and `filepath` set by the job's creator, as AWS's CreateOTAUpdate lets them be:
 * `xs-ota job create --certfile LABEL --filepath PATH` (control API POST /jobs), `xs-ota job
 * document` likewise; the device parses the document to a plan whose key label is that certfile,
 * and a device holding the key under that label updates while one holding it under another label
 * refuses the image. Defaults stay signer.crt and /fw.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync } from "mqtt";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";
import { appImage } from "./contract/boot-fixture.ts";
import { SimDevice, until } from "./support/sim-device.ts";
import { runCli } from "./support/cli.ts";

const root = mkdtempSync(join(tmpdir(), "xs-ota-certfile-"));
const firmware = join(root, "app-1.0.1.bin");
const keyPath = join(root, "signing-key.pem");
const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
let cloud: Cloud;
const devices: SimDevice[] = [];

beforeAll(async () => {
  writeFileSync(firmware, appImage("1.0.1", 12_000));
  writeFileSync(keyPath, privateKey.export({ type: "pkcs8", format: "pem" }));
  cloud = await startCloud({ dataDir: join(root, "data"), mqttPort: 0, mqttsPort: 0, httpsPort: 0, httpPort: 0, controlPort: 0 });
});
afterAll(async () => {
  for (const d of devices) await d.powerCut();
  await cloud?.close();
  rmSync(root, { recursive: true, force: true });
});

type AwsFile = { certfile?: string; filepath?: string };
const fileOf = (document: unknown) => ((document as { afr_ota: { files: AwsFile[] } }).afr_ota.files[0] ?? {}) as AwsFile;

/** What a device gets from $next/get (asked without a subscription, as AWS allows). */
async function nextMessage(thing: string): Promise<Buffer> {
  const probe = await connectAsync(cloud.urls.mqtt, { clientId: `probe-${thing}`, protocolVersion: 4, reconnectPeriod: 0 });
  try {
    const answer = new Promise<Buffer>((resolve) => probe.on("message", (_t, payload) => resolve(payload)));
    await probe.publishAsync(`$aws/things/${thing}/jobs/$next/get`, JSON.stringify({ clientToken: "probe" }), { qos: 1 });
    return await answer;
  } finally {
    await probe.endAsync();
  }
}

function device(thing: string, label: string): SimDevice {
  const d = new SimDevice({ thing, brokerUrl: cloud.urls.mqtt, keys: { [label]: publicPem }, config: { ca: cloud.caCert } });
  devices.push(d);
  return d;
}

const post = (body: Record<string, unknown>) =>
  fetch(`${cloud.urls.control}/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }).then(async (r) => ({
    status: r.status,
    body: (await r.json()) as Record<string, unknown>,
  }));

describe("job create --certfile / --filepath", () => {
  it("the document carries them, the device's plan names the key by the certfile, and a device with that key updates", async () => {
    const created = await runCli(["job", "create", "--thing", "cf-a", "--file", firmware, "--key", keyPath, "--job-id", "cf-http", "--certfile", "ota-signer-2.crt", "--filepath", "/ota/app.bin", "--control", cloud.urls.control]);
    expect(created.err).toBe("");
    expect(created.code).toBe(0);
    expect(created.out).toContain('"certfile": "ota-signer-2.crt"');
    expect(created.out).toContain('"filepath": "/ota/app.bin"');
    expect(fileOf(cloud.jobs.describeJob("cf-http")?.job.document)).toMatchObject({ certfile: "ota-signer-2.crt", filepath: "/ota/app.bin" });

    const message = join(root, "next-accepted.json");
    writeFileSync(message, await nextMessage("cf-a"));
    const parsed = await runCli(["job", "parse", message]);
    expect(parsed.code).toBe(0);
    expect(JSON.parse(parsed.out)).toMatchObject({ jobId: "cf-http", protocol: "http", keyLabel: "ota-signer-2.crt" });

    const d = device("cf-a", "ota-signer-2.crt");
    await d.start();
    await until(() => cloud.jobs.execution("cf-a", "cf-http")?.status === "SUCCEEDED", 20_000, "SUCCEEDED");
    await d.settled();
    expect(d.version).toBe("1.0.1");
  }, 30_000);

  it("a device that holds the key only under signer.crt refuses an image signed for another label (MQTT)", async () => {
    const created = await post({ thing: "cf-b", file: firmware, key: keyPath, protocol: "mqtt", jobId: "cf-mqtt", certfile: "other.crt" });
    expect(created.status).toBe(201);
    expect(fileOf(created.body["document"])).toMatchObject({ certfile: "other.crt", filepath: "/fw" });
    const d = device("cf-b", SIGNER_LABEL);
    await d.start();
    await until(() => cloud.jobs.execution("cf-b", "cf-mqtt")?.status === "FAILED", 20_000, "FAILED");
    expect(JSON.stringify(cloud.jobs.execution("cf-b", "cf-mqtt")?.statusDetails)).toContain("other.crt");
    expect(d.version).toBe("1.0.0");
  }, 30_000);

  it("defaults: certfile signer.crt, filepath /fw", async () => {
    const created = await post({ thing: "cf-c", file: firmware, key: keyPath, jobId: "cf-default" });
    expect(created.status).toBe(201);
    expect(fileOf(created.body["document"])).toMatchObject({ certfile: SIGNER_LABEL, filepath: "/fw" });
  });

  it("refuses what a device could not read, and the fields on formats that have none", async () => {
    expect(await post({ thing: "cf-d", file: firmware, jobId: "cf-bad-1", certfile: "" })).toEqual({ status: 400, body: { error: "certfile is empty" } });
    expect(await post({ thing: "cf-d", file: firmware, jobId: "cf-bad-2", filepath: "/a\nb" })).toEqual({ status: 400, body: { error: "filepath has control characters" } });
    expect(await post({ thing: "cf-d", file: firmware, jobId: "cf-bad-3", certfile: "x".repeat(257) })).toEqual({
      status: 400,
      body: { error: "certfile is 257 characters; a device takes at most 256" },
    });
    expect(await post({ thing: "cf-d", file: firmware, jobId: "cf-bad-4", certfile: 7 })).toEqual({ status: 400, body: { error: "certfile must be a string" } });
    const nrf = await runCli(["job", "create", "--thing", "cf-d", "--file", firmware, "--format", "nrf", "--certfile", "a.crt", "--control", cloud.urls.control]);
    expect(nrf.code).toBe(1);
    expect(nrf.err).toBe("error: the cloud refused: certfile is a field of AWS OTA (afr_ota) documents; format nrf has none");
    expect(cloud.jobs.describeJob("cf-bad-1")).toBeUndefined();
  });

  it("xs-ota job document takes --certfile and --filepath too", async () => {
    const r = await runCli(["job", "document", "--file", firmware, "--stream", "s-1", "--key", keyPath, "--certfile", "lab.crt", "--filepath", "/x/y.bin"]);
    expect(r.code).toBe(0);
    expect(fileOf(JSON.parse(r.out))).toMatchObject({ certfile: "lab.crt", filepath: "/x/y.bin" });
    const bad = await runCli(["job", "document", "--file", firmware, "--url", "https://h/fw.bin", "--format", "zerynth", "--filepath", "/x"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--filepath is for AWS OTA documents; format zerynth has no filepath");
  });
});
