/**
 * The local cloud's MQTT over mutual TLS (cloud/server.ts `urls.mqtts`, as AWS IoT Core on 8883):
 * only certificates the cloud's CA issued get in, the certificate's CN is the thing, and a thing
 * may use its own `$aws/things/<thing>/...` topics only. Devices and clients here are the real
 * ones (SimDevice's agent over NodeMqtt, the XS simulator through `xs-ota sim`, plain mqtt.js),
 * and certificates come from issueThingCertificate or `xs-ota thing create`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { X509Certificate, createPrivateKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";
import { issueThingCertificate, makeLocalCa, type LocalCa, type ThingCertificate } from "../cloud/tls.ts";
import { foreignThingTopic } from "../cloud/thing-policy.ts";
import { NodeMqtt } from "../hosts/sim/mqtt.ts";
import { buildFirmware, DEMO_APP } from "../hosts/sim/firmware.ts";
import { writeSigningKeys } from "../cli/signing.ts";
import { appImage } from "./contract/boot-fixture.ts";
import { SimDevice, until } from "./support/sim-device.ts";
import { runCliLines } from "./support/cli.ts";

const root = mkdtempSync(join(tmpdir(), "xs-ota-mtls-"));
const dataDir = join(root, "data");
let cloud: Cloud;
let ca: LocalCa;
const clients: MqttClient[] = [];
const devices: SimDevice[] = [];

beforeAll(async () => {
  cloud = await startCloud({ dataDir, mqttPort: 0, mqttsPort: 0, httpsPort: 0, httpPort: 0, controlPort: 0 });
  // The same files the cloud loaded: its CA, with the key that issues thing certificates.
  ca = await makeLocalCa(join(dataDir, "tls"));
});
afterAll(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => undefined);
  for (const d of devices) await d.powerCut();
  await cloud?.close();
  rmSync(root, { recursive: true, force: true });
});

async function tlsClient(clientId: string, identity: ThingCertificate): Promise<MqttClient> {
  const client = await connectAsync(cloud.urls.mqtts ?? "", { clientId, protocolVersion: 4, reconnectPeriod: 0, ca: cloud.caCert, cert: identity.cert, key: identity.key });
  clients.push(client);
  return client;
}

/** The SUBACK's return codes; mqtt.js rejects a SUBACK with any 0x80 in it, the packet attached. */
async function grants(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 1 })).map((g) => g.qos);
  } catch (e) {
    const granted = (e as { packet?: { granted?: unknown } }).packet?.granted;
    if (Array.isArray(granted)) return granted as number[];
    throw e;
  }
}

/** Resolves when the connection has closed, with whatever was received before. */
const closed = (client: MqttClient) => new Promise<void>((resolve) => (client.disconnected ? resolve() : client.once("close", () => resolve())));

describe("the cloud's mqtts listener", () => {
  it("is on 127.0.0.1 next to the plain one", () => {
    expect(cloud.urls.mqtts).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    expect(new URL(cloud.urls.mqtts ?? "").port).not.toBe(new URL(cloud.urls.mqtt).port);
  });

  it.each(["mqtt", "http"] as const)("a device with its thing certificate completes an AWS update over %s", async (protocol) => {
    const thing = `tls-dev-${protocol}`;
    const signing = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const keyPath = join(root, `${thing}-signing.pem`);
    writeFileSync(keyPath, signing.privateKey.export({ type: "pkcs8", format: "pem" }));
    const firmware = join(root, `${thing}-1.0.1.bin`);
    writeFileSync(firmware, appImage("1.0.1", 12_000));
    const res = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ thing, file: firmware, key: keyPath, protocol, jobId: `tls-${protocol}` }) });
    expect(res.status, await res.clone().text()).toBe(201);
    const identity = await issueThingCertificate(ca, thing);
    // SimDevice's client id is `<thing>-<boot>`: not the thing name, which AWS allows.
    const d = new SimDevice({
      thing,
      brokerUrl: cloud.urls.mqtts ?? "",
      tls: { ca: cloud.caCert, ...identity },
      keys: { [SIGNER_LABEL]: signing.publicKey.export({ type: "spki", format: "pem" }).toString() },
      config: { ca: cloud.caCert },
    });
    devices.push(d);
    await d.start();
    await until(() => cloud.jobs.execution(thing, `tls-${protocol}`)?.status === "SUCCEEDED", 20_000, "SUCCEEDED");
    await d.settled();
    expect(d.version).toBe("1.0.1");
    expect(d.boots).toBe(2);
  }, 30_000);

  it("refuses at the handshake a certificate from another CA, and a client without one", async () => {
    const stranger = await issueThingCertificate(await makeLocalCa(), "tls-stranger");
    const url = cloud.urls.mqtts ?? "";
    const attempt = (extra: { cert?: string; key?: string }) => NodeMqtt.connect(url, { clientId: "tls-stranger", ca: cloud.caCert, reconnectPeriod: 0, connectTimeout: 5000, ...extra });
    await expect(attempt({ cert: stranger.cert, key: stranger.key })).rejects.toMatchObject({ code: "network", message: expect.stringMatching(/^cannot connect to mqtts:/) });
    await expect(attempt({})).rejects.toMatchObject({ code: "network", message: expect.stringMatching(/^cannot connect to mqtts:/) });
    // The control: the same client with a certificate of the cloud's CA gets in.
    const own = await attempt(await issueThingCertificate(ca, "tls-stranger"));
    expect(own.connected).toBe(true);
    await own.close();
  });

  it("lets thing A use its own topics only: another thing's subscription gets 0x80, its publish closes the connection", async () => {
    const a = await tlsClient("any-client-id", await issueThingCertificate(ca, "tls-A"));
    const filters = ["$aws/things/tls-A/jobs/notify-next", "$aws/things/tls-B/jobs/notify-next", "$aws/things/+/jobs/notify-next", "$aws/things/#", "other/topic"];
    expect(await grants(a, filters)).toEqual([1, 0x80, 0x80, 0x80, 1]);
    // Its own request is answered.
    const answers: string[] = [];
    a.on("message", (topic) => answers.push(topic));
    await a.publishAsync("$aws/things/tls-A/jobs/$next/get", JSON.stringify({ clientToken: "a1" }), { qos: 1 });
    await until(() => answers.includes("$aws/things/tls-A/jobs/$next/get/accepted"), 5000, "A's answer");
    expect(a.connected).toBe(true);

    const gone = closed(a);
    a.publish("$aws/things/tls-B/jobs/$next/get", JSON.stringify({ clientToken: "a2" }), { qos: 1 });
    await gone;
    expect(answers.filter((t) => t.includes("tls-B"))).toEqual([]);
  });

  it("does not restrict clients of the plain listener (local use)", async () => {
    const plain = await connectAsync(cloud.urls.mqtt, { clientId: "tls-plain", protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(plain);
    expect(await grants(plain, ["$aws/things/tls-B/jobs/notify-next", "$aws/things/+/jobs/notify-next"])).toEqual([1, 1]);
  });
});

describe("the thing policy's rule", () => {
  it("refuses any topic or filter that can reach another thing's topics, and nothing else", () => {
    for (const ok of ["$aws/things/T/jobs/get", "$aws/things/T/#", "$aws/things/T", "$aws/things", "$aws/+/T/jobs/#", "$aws/rules/r", "a/b", "#", "+/things/U"]) {
      expect(foreignThingTopic("T", ok), ok).toBeUndefined();
    }
    for (const bad of ["$aws/things/U/jobs/get", "$aws/things/+/jobs/get", "$aws/things/#", "$aws/#", "$aws/+/U/jobs", "$aws/things//jobs", "$aws/things/TT/jobs"]) {
      expect(foreignThingTopic("T", bad), bad).toBeTypeOf("string");
    }
  });
});

describe("xs-ota thing create", () => {
  it("writes NAME.cert.pem and NAME.key.pem (0600), CN = NAME, issued by the cloud's CA; the running cloud takes it", async () => {
    const r = await runCliLines(["thing", "create", "tls:cli_1-x", "--data", dataDir]);
    expect(r.code, r.err.join("\n")).toBe(0);
    const certPath = join(dataDir, "things", "tls:cli_1-x.cert.pem");
    const keyPath = join(dataDir, "things", "tls:cli_1-x.key.pem");
    expect(r.out).toEqual([`certificate  ${certPath}`, `key          ${keyPath}`, `CA           ${join(dataDir, "tls", "ca.pem")}`]);
    const cert = new X509Certificate(readFileSync(certPath));
    const caX = new X509Certificate(cloud.caCert);
    expect(cert.subject).toBe("CN=tls:cli_1-x");
    expect(cert.checkIssued(caX)).toBe(true);
    expect(cert.verify(caX.publicKey)).toBe(true);
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"]);
    const key = readFileSync(keyPath, "utf8");
    expect(cert.checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);

    const client = await tlsClient("cli-client", { cert: readFileSync(certPath, "utf8"), key });
    expect(await grants(client, ["$aws/things/tls:cli_1-x/jobs/notify-next", "$aws/things/tls-A/jobs/notify-next"])).toEqual([1, 0x80]);
  });

  it("writes into --out, and refuses to overwrite either file (one line, exit 1)", async () => {
    const out = join(root, "out");
    expect((await runCliLines(["thing", "create", "tls-out", "--data", dataDir, "--out", out])).code).toBe(0);
    const before = readFileSync(join(out, "tls-out.key.pem"), "utf8");
    const again = await runCliLines(["thing", "create", "tls-out", "--data", dataDir, "--out", out]);
    expect(again.code).toBe(1);
    expect(again.err).toHaveLength(1);
    expect(again.err[0]).toMatch(/^error: .*tls-out\.cert\.pem and .*tls-out\.key\.pem already exist/);
    expect(readFileSync(join(out, "tls-out.key.pem"), "utf8")).toBe(before);
  });

  it("--key-type rsa: an RSA 2048 device key (for Moddable's TLS), which the listener takes too", async () => {
    const out = join(root, "rsa");
    expect((await runCliLines(["thing", "create", "tls-rsa", "--data", dataDir, "--out", out, "--key-type", "rsa"])).code).toBe(0);
    const key = readFileSync(join(out, "tls-rsa.key.pem"), "utf8");
    expect(createPrivateKey(key).asymmetricKeyDetails).toMatchObject({ modulusLength: 2048 });
    const client = await tlsClient("rsa-client", { cert: readFileSync(join(out, "tls-rsa.cert.pem"), "utf8"), key });
    expect(await grants(client, ["$aws/things/tls-rsa/jobs/notify-next"])).toEqual([1]);
    const bad = await runCliLines(["thing", "create", "tls-rsa2", "--data", dataDir, "--key-type", "dsa"]);
    expect([bad.code, bad.err[0]]).toEqual([2, "xs-ota thing create: --key-type takes ec, rsa, got dsa"]);
  });

  it.each([["bad/name"], ["x".repeat(129)], ["sp ace"]])("refuses the thing name %s (one line, exit 2)", async (name) => {
    const r = await runCliLines(["thing", "create", name, "--data", dataDir, "--out", join(root, "bad")]);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/^xs-ota thing: thing name ".*": /);
    await expect(issueThingCertificate(ca, name)).rejects.toMatchObject({ code: "bad-argument" });
  });
});

describe("xs-ota sim over mqtts", () => {
  it("--count 2 --certs DIR: each simulated device on XS presents its own certificate and updates", async () => {
    const { publicPath, privatePath } = writeSigningKeys(root);
    const v100 = join(root, "sim-1.0.0.bin");
    const v101 = join(root, "sim-1.0.1.bin");
    await buildFirmware({ entry: DEMO_APP.passes, version: "1.0.0", out: v100 });
    await buildFirmware({ entry: DEMO_APP.passes, version: "1.0.1", out: v101 });
    const certs = join(root, "sim-certs");
    for (const t of ["tls-sim-1", "tls-sim-2"]) expect((await runCliLines(["thing", "create", t, "--data", dataDir, "--out", certs])).code).toBe(0);
    const run = runCliLines([
      "sim", "--thing", "tls-sim", "--count", "2", "--firmware", v100, "--key", publicPath, "--broker", cloud.urls.mqtts ?? "",
      "--ca", cloud.caPath, "--certs", certs, "--dir", join(root, "sim"), "--until", "1.0.1",
    ]);
    await until(() => [1, 2].every((i) => cloud.jobs.log.some((l) => l.thing === `tls-sim-${i}`)), 20_000, "both devices to ask for jobs");
    const res = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ things: ["tls-sim-1", "tls-sim-2"], file: v101, key: privatePath, protocol: "mqtt", jobId: "tls-sim" }) });
    expect(res.status, await res.clone().text()).toBe(201);
    const r = await run;
    expect(r.code, [...r.out, ...r.err].join("\n")).toBe(0);
    expect(r.out.at(-1)).toMatch(/^2 on 1\.0\.1; 2 updated, 0 halted/);
    expect(["tls-sim-1", "tls-sim-2"].map((t) => cloud.jobs.execution(t, "tls-sim")?.status)).toEqual(["SUCCEEDED", "SUCCEEDED"]);
  }, 60_000);

  it("refuses a certificate that names another thing, and certificates for a plain mqtt:// broker", async () => {
    const certs = join(root, "sim-certs");
    const wrong = await runCliLines(["sim", "--thing", "tls-sim-9", "--allow-unsigned", "--broker", cloud.urls.mqtts ?? "", "--ca", cloud.caPath,
      "--cert", join(certs, "tls-sim-1.cert.pem"), "--cert-key", join(certs, "tls-sim-1.key.pem"), "--dir", join(root, "sim-wrong")]);
    expect(wrong.code).toBe(1);
    expect(wrong.err.join("\n")).toContain("is thing tls-sim-1's certificate, not tls-sim-9's");
    const plain = await runCliLines(["sim", "--allow-unsigned", "--broker", cloud.urls.mqtt, "--certs", certs, "--dir", join(root, "sim-plain")]);
    expect(plain.code).toBe(2);
    expect(plain.err[0]).toBe(`xs-ota sim: client certificates are for an mqtts:// --broker, got ${cloud.urls.mqtt}`);
  });
});
