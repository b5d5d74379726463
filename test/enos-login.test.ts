/**
 * EnOS device login and file download. The contract suite (test/contract/enos-login.contract.ts)
 * runs on Node and on XS; the rest runs the local cloud's side against the device's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { contract } from "./contract/vitest.ts";
import login from "./contract/enos-login.contract.ts";
import { connectAsync, type MqttClient } from "mqtt";
import { startCloud, type Cloud } from "../cloud/server.ts";
import type { EnosDeviceIdentity } from "../cloud/enos-auth.ts";
import { enosHttpAuthBody, enosMqttLogin } from "../modules/enos/login.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { appImage } from "./contract/boot-fixture.ts";
import { SimDevice, until } from "./support/sim-device.ts";

contract(login, new URL("./contract/enos-login.contract.ts", import.meta.url));

const root = mkdtempSync(join(tmpdir(), "xs-ota-enos-login-"));
let cloud: Cloud;
const devices: SimDevice[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  cloud = await startCloud({ dataDir: join(root, "data"), mqttPort: 0, httpsPort: 0, httpPort: 0, controlPort: 0 });
});
afterAll(async () => {
  for (const c of clients) await c.endAsync(true);
  for (const d of devices) await d.powerCut();
  await cloud?.close();
  rmSync(root, { recursive: true, force: true });
});

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${path.startsWith("/auth") ? cloud.urls.http : cloud.urls.control}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function register(productKey: string, deviceKey: string): Promise<EnosDeviceIdentity> {
  const r = await post("/enos/devices", { productKey, deviceKey });
  expect(r.status).toBe(201);
  return r.json as unknown as EnosDeviceIdentity;
}

async function mqttLogin(login: { clientId: string; username: string; password: string }): Promise<MqttClient> {
  const client = await connectAsync(cloud.urls.mqtt, { ...login, protocolVersion: 4, reconnectPeriod: 0 });
  clients.push(client);
  return client;
}

describe("the local cloud checks EnOS logins", () => {
  it("takes the documented signature, securemode 2 and 3, and refuses a wrong secret", async () => {
    const id = await register("pkL", "dkL");
    expect(id.deviceSecret).toMatch(/^[0-9a-f]{32}$/);
    const now = Date.now();
    await mqttLogin(enosMqttLogin({ productKey: "pkL", deviceKey: "dkL", deviceSecret: id.deviceSecret }, now, nodeDigests));
    await mqttLogin(enosMqttLogin({ productKey: "pkL", deviceKey: "dkL", clientId: "sn-0042", productSecret: id.productSecret }, now, nodeDigests));
    const wrong = enosMqttLogin({ productKey: "pkL", deviceKey: "dkL", deviceSecret: `${id.deviceSecret}x` }, now, nodeDigests);
    await expect(mqttLogin(wrong)).rejects.toThrow(/Bad username or password/i);
    const stranger = enosMqttLogin({ productKey: "pkL", deviceKey: "nobody", deviceSecret: id.deviceSecret }, now, nodeDigests);
    await expect(mqttLogin(stranger)).rejects.toThrow(/Bad username or password/i);
    expect(cloud.refusals.some((r) => r.includes("is not the securemode 2 signature of device dkL"))).toBe(true);
    expect(cloud.refusals.some((r) => r.includes("no device nobody in product pkL"))).toBe(true);
  });

  it("keeps a registered device's topics for the client logged in as it; AWS clients are not asked", async () => {
    const id = await register("pkT", "dkT");
    const other = await connectAsync(cloud.urls.mqtt, { clientId: "some-aws-thing", protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(other);
    // SUBACK 0x80 for the filter: mqtt.js rejects the subscription.
    await expect(other.subscribeAsync("/sys/pkT/dkT/ota/device/upgrade", { qos: 1 })).rejects.toThrow(/Subscribe error/);
    expect(cloud.refusals.at(-1)).toContain("subscribe /sys/pkT/dkT/ota/device/upgrade: /sys/pkT/dkT/ota/device/upgrade belongs to EnOS device dkT of product pkT");
    const own = await mqttLogin(enosMqttLogin({ productKey: "pkT", deviceKey: "dkT", deviceSecret: id.deviceSecret }, Date.now(), nodeDigests));
    const granted = await own.subscribeAsync("/sys/pkT/dkT/ota/device/upgrade", { qos: 1 });
    expect(granted[0]?.qos).toBe(1);
    const aws = await other.subscribeAsync("$aws/things/some-aws-thing/jobs/notify-next", { qos: 1 });
    expect(aws[0]?.qos).toBe(1);
  });
});

describe("the EnOS HTTP broker's login and file download", () => {
  it("gives a session for the signed login, serves the offered file with Range, and refuses without one", async () => {
    const id = await register("pkH", "dkH");
    const bad = await post("/auth/pkH/dkH", { signMethod: "sha256", lifetime: 300000, sign: "0".repeat(64) });
    expect(bad.status).toBe(401);
    expect(bad.json["message"]).toContain("not device dkH's signature");
    const good = await post("/auth/pkH/dkH", JSON.parse(enosHttpAuthBody({ productKey: "pkH", deviceKey: "dkH", deviceSecret: id.deviceSecret }, 300000, nodeDigests)));
    expect(good.status).toBe(200);
    expect(good.json["code"]).toBe(200);
    const sessionId = (good.json["data"] as Record<string, string>)["sessionId"];
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const file = appImage("2.0.0", 3000);
    const offer = cloud.enos.addFirmware("pkH", { version: "2.0.0", file, fileName: "fw-2.bin", uri: "enos-connect" });
    expect(offer.fileUrl).toBe("enos-connect://ota/pkH/fw-2.bin");
    const download = (session: string, range?: string) =>
      fetch(`${cloud.urls.http}/multipart/sys/pkH/dkH/file/download?sessionId=${session}&fileUri=${encodeURIComponent(offer.fileUrl)}&category=ota`, { headers: range ? { range } : {} });
    const part = await download(sessionId, "bytes=100-199");
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 100-199/${file.length}`);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(file.subarray(100, 200));
    expect((await download(sessionId, `bytes=${file.length}-`)).status).toBe(416);
    const none = await download("not-a-session");
    expect(none.status).toBe(401);
    expect(((await none.json()) as Record<string, string>)["message"]).toContain("no such session");
    // Another device's session is not this device's.
    const id2 = await register("pkH", "dkH2");
    const other = await post("/auth/pkH/dkH2", JSON.parse(enosHttpAuthBody({ productKey: "pkH", deviceKey: "dkH2", deviceSecret: id2.deviceSecret }, 300000, nodeDigests)));
    expect((await download((other.json["data"] as Record<string, string>)["sessionId"] ?? "")).status).toBe(401);
  });

  it("a session ends after its lifetime without use", async () => {
    const id = await register("pkX", "dkX");
    const good = await post("/auth/pkX/dkX", JSON.parse(enosHttpAuthBody({ productKey: "pkX", deviceKey: "dkX", deviceSecret: id.deviceSecret }, 50, nodeDigests)));
    const sessionId = (good.json["data"] as Record<string, string>)["sessionId"];
    cloud.enos.addFirmware("pkX", { version: "2.0.0", file: appImage("2.0.0"), fileName: "x.bin", uri: "enos-connect" });
    await new Promise((r) => setTimeout(r, 120));
    const late = await fetch(`${cloud.urls.http}/multipart/sys/pkX/dkX/file/download?sessionId=${sessionId}&fileUri=${encodeURIComponent("enos-connect://ota/pkX/x.bin")}&category=ota`);
    expect(late.status).toBe(401);
    expect(((await late.json()) as Record<string, string>)["message"]).toContain("expired");
  });
});

describe("a simulated EnOS device", () => {
  it("logs in with its secret and updates from an enos-connect:// offer through the HTTP broker", async () => {
    const id = await register("pkS", "dkS");
    const d = new SimDevice({
      thing: "dkS",
      brokerUrl: cloud.urls.mqtt,
      keys: {},
      config: { allowUnsigned: true },
      cloud: { kind: "enos", productKey: "pkS", deviceKey: "dkS", deviceSecret: id.deviceSecret, fileService: cloud.urls.http },
    });
    devices.push(d);
    await d.start();
    await until(() => cloud.enos.device("pkS", "dkS")?.version === "1.0.0", 5000, "the device to inform 1.0.0");
    const firmware = join(root, "enos-1.0.1.bin");
    writeFileSync(firmware, appImage("1.0.1", 20_000));
    const res = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ thing: "dkS", file: firmware, format: "enos", productKey: "pkS", jobId: "enos-s1" }) });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { document: { fileUrl: string } }).document.fileUrl).toBe("enos-connect://ota/pkS/enos-s1.bin");
    await until(() => cloud.enos.device("pkS", "dkS")?.version === "1.0.1", 20_000, "the inform of 1.0.1");
    await d.settled();
    expect(d.version).toBe("1.0.1");
    const downloads = cloud.enos.fileRequests.filter((r) => r.path === "/multipart/sys/pkS/dkS/file/download");
    expect(downloads.length).toBeGreaterThan(0);
    expect(downloads.every((r) => r.status === 200 || r.status === 206)).toBe(true);
    expect(cloud.enos.fileRequests.some((r) => r.method === "POST" && r.path === "/auth/pkS/dkS" && r.status === 200)).toBe(true);
  });

  it("with a wrong secret is refused at CONNECT", async () => {
    const id = await register("pkW", "dkW");
    const d = new SimDevice({ thing: "dkW", brokerUrl: cloud.urls.mqtt, keys: {}, cloud: { kind: "enos", productKey: "pkW", deviceKey: "dkW", deviceSecret: `not-${id.deviceSecret}` } });
    await expect(d.start()).rejects.toThrow(/Bad username or password/i);
  });
});

describe("a simulated EnOS device whose HTTP session ends mid-download", () => {
  it("logs in again and goes on from the byte it reached", async () => {
    const id = await register("pkR", "dkR");
    let downloads = 0;
    const d = new SimDevice({
      thing: "dkR",
      brokerUrl: cloud.urls.mqtt,
      keys: {},
      config: { allowUnsigned: true, httpWindow: 4096 },
      cloud: { kind: "enos", productKey: "pkR", deviceKey: "dkR", deviceSecret: id.deviceSecret, fileService: cloud.urls.http },
      wrapHttp: (http) => ({
        request: (r) => {
          // The broker restarts before the third ranged request: the session is gone.
          if (r.url.includes("/file/download") && ++downloads === 3) cloud.enos.endSessions();
          return http.request(r);
        },
      }),
    });
    devices.push(d);
    await d.start();
    await until(() => cloud.enos.device("pkR", "dkR")?.version === "1.0.0", 5000, "the device to inform 1.0.0");
    const firmware = join(root, "enos-r-1.0.1.bin");
    writeFileSync(firmware, appImage("1.0.1", 20_000));
    const res = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ thing: "dkR", file: firmware, format: "enos", productKey: "pkR", jobId: "enos-r1" }) });
    expect(res.status).toBe(201);
    await until(() => cloud.enos.device("pkR", "dkR")?.version === "1.0.1", 20_000, "the inform of 1.0.1");
    const seen = cloud.enos.fileRequests.filter((r) => r.path.endsWith("/pkR/dkR") || r.path === "/multipart/sys/pkR/dkR/file/download");
    const statuses = seen.map((r) => `${r.method} ${r.status} ${r.range ?? ""}`.trim());
    // login, two ranges, a refusal, a fresh login, and the rest from where it stopped
    expect(statuses.slice(0, 5)).toEqual(["POST 200", "GET 206 bytes=0-4095", "GET 206 bytes=4096-8191", "GET 401 bytes=8192-12287", "POST 200"]);
    expect(statuses[5]).toBe("GET 206 bytes=8192-12287");
    expect(seen.filter((r) => r.status === 401)).toHaveLength(1);
  });
});
