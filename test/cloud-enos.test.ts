/**
 * cloud/enos.ts: the EnOS OTA cloud over an in-process aedes broker, with the device side of
 * modules/enos/client.ts (EnosOtaClient over NodeMqtt) as the device, its file endpoint, and a
 * simulated device that finds an upgrade through getversion by itself.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { startBroker, type TestBroker } from "./support/broker.ts";
import { SimDevice, until } from "./support/sim-device.ts";
import { appImage } from "./contract/boot-fixture.ts";
import { EnosService, parseRange, type EnosFileEndpoint } from "../cloud/enos.ts";
import { EnosOtaClient } from "../modules/enos/client.ts";
import { NodeMqtt } from "../hosts/sim/mqtt.ts";
import { NodeClock } from "../hosts/sim/clock.ts";

let broker: TestBroker;
let service: EnosService;
let files: EnosFileEndpoint;
const connections: NodeMqtt[] = [];

beforeAll(async () => {
  broker = await startBroker();
  service = new EnosService(broker.aedes);
  await service.start();
  files = await service.startFiles();
});
afterAll(async () => {
  for (const c of connections) await c.close();
  await service?.stop();
  await broker?.close();
});

async function deviceClient(productKey: string, deviceKey: string): Promise<{ mqtt: NodeMqtt; client: EnosOtaClient }> {
  const mqtt = await NodeMqtt.connect(broker.url, { clientId: `${productKey}-${deviceKey}` });
  connections.push(mqtt);
  const client = new EnosOtaClient({ mqtt, clock: new NodeClock(), productKey, deviceKey, timeoutMs: 3000 });
  mqtt.onMessage((topic, payload) => client.handle(topic, payload));
  await client.start();
  return { mqtt, client };
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("EnosService over aedes", () => {
  it("records an inform and replies {id, code: 200, data: {}}", async () => {
    const { client } = await deviceClient("pkA", "dev1");
    await client.inform("1.2.0");
    await until(() => client.lastReply?.operation === "inform", 3000, "inform_reply");
    expect(client.lastReply).toMatchObject({ code: 200, data: {}, productKey: "pkA", deviceKey: "dev1" });
    const d = service.device("pkA", "dev1");
    expect(d?.version).toBe("1.2.0");
    expect(d?.informs).toEqual([expect.objectContaining({ version: "1.2.0", method: "ota.device.inform" })]);
  });

  it("records progress and replies 200", async () => {
    const { client } = await deviceClient("pkA", "dev2");
    await client.progress(42, "downloading");
    await client.progress(-2, "download failed: timeout");
    await until(() => (service.device("pkA", "dev2")?.progress.length ?? 0) === 2, 3000, "progress");
    await until(() => client.lastReply?.operation === "progress", 3000, "progress_reply");
    expect(client.lastReply?.code).toBe(200);
    expect(service.device("pkA", "dev2")?.progress.map((p) => [p.step, p.rawStep, p.desc])).toEqual([
      [42, "42", "downloading"],
      [-2, "-2", "download failed: timeout"],
    ]);
  });

  it("getversion lists only the product's versions newer than the informed one, newest first", async () => {
    const f100 = bytes(5000, 1);
    const f121 = bytes(7000, 2);
    const f130 = bytes(9000, 3);
    service.addFirmware("pkB", { version: "1.0.0", file: f100 });
    const e121 = service.addFirmware("pkB", { version: "1.2.1", file: f121, fileName: "fw-121.bin" });
    const e130 = service.addFirmware("pkB", { version: "1.3.0", file: f130, signMethod: "sha256" });
    service.addFirmware("pkOther", { version: "9.0.0", file: f130 });
    expect(e121).toEqual({ version: "1.2.1", sign: md5(f121), signMethod: "md5", fileUrl: "/pkB/ota/fw-121.bin", fileSize: 7000 });
    expect(e130).toMatchObject({ sign: sha256(f130), signMethod: "sha256", fileUrl: "/pkB/ota/1.3.0.bin", fileSize: 9000 });

    const { client } = await deviceClient("pkB", "dev1");
    await client.inform("1.2.0");
    const list = await client.getVersions();
    expect(list).toEqual([e130, e121]);
    expect(service.device("pkB", "dev1")?.getVersionRequests).toBe(1);

    await client.inform("1.3.0");
    expect(await client.getVersions()).toEqual([]);
  });

  it("pushUpgrade publishes the request and resolves with the device's reply", async () => {
    const { client } = await deviceClient("pkB", "dev2");
    const pushes: { params: unknown; id: string | number }[] = [];
    client.onUpgrade((payload, id) => {
      pushes.push({ params: (JSON.parse(Buffer.from(payload).toString("utf8")) as { params: unknown }).params, id });
      void client.reply(id, 200);
    });
    const reply = await service.pushUpgrade("pkB", "dev2", "1.2.1");
    expect(reply).toMatchObject({ code: 200, data: {} });
    expect(pushes).toHaveLength(1);
    expect(reply.id).toBe(pushes[0].id);
    expect(pushes[0].params).toEqual(service.firmware("pkB").find((f) => f.version === "1.2.1"));
    await expect(service.pushUpgrade("pkB", "dev2", "7.7.7")).rejects.toThrow(/no firmware 7.7.7/);
  });

  it("never crashes on malformed messages, and records them", async () => {
    const { mqtt, client } = await deviceClient("pkC", "dev1");
    const before = service.malformed.length;
    await mqtt.publish("/sys/pkC/dev1/ota/device/inform", "not json", 1);
    await mqtt.publish("/sys/pkC/dev1/ota/device/inform", "[1,2]", 1);
    await mqtt.publish("/sys/pkC/dev1/ota/device/inform", JSON.stringify({ id: "5", params: {} }), 1);
    await mqtt.publish("/sys/pkC/dev1/ota/device/progress", JSON.stringify({ id: "6", params: { step: "250" } }), 1);
    await mqtt.publish("/sys/pkC/dev1/ota/device/getversion", JSON.stringify({ params: {} }), 1);
    await mqtt.publish("/sys/pkC/dev1/ota/device/upgrade_reply", JSON.stringify({ id: "nobody", code: 200 }), 1);
    await mqtt.publish("/sys/pkC/dev1/ota/device/inform", new Uint8Array([0xff, 0xfe, 0x00]), 1);
    await until(() => service.malformed.length >= before + 7, 3000, "malformed recorded");
    await service.idle();
    expect(service.malformed.slice(before).map((m) => m.reason)).toEqual([
      "not JSON",
      "not a JSON object",
      "inform without a version string",
      'progress step "250": 0 to 100, or -1 to -4',
      "getversion without a usable id",
      "reply to no pending upgrade",
      "not JSON",
    ]);
    await until(() => client.lastReply?.code === 400, 3000, "a 400 reply to the bad progress");
    expect(service.lastError).toBeUndefined();
    // Still answering.
    await client.inform("0.1.0");
    await until(() => service.device("pkC", "dev1")?.version === "0.1.0", 3000, "inform after garbage");
  });

  it("checks what addFirmware is given", () => {
    expect(() => service.addFirmware("pkD", { version: "banana", file: bytes(10, 0) })).toThrow(/version/);
    expect(() => service.addFirmware("pkD", { version: "1.0.0", file: new Uint8Array(0) })).toThrow(/non-empty/);
    expect(() => service.addFirmware("pkD", { version: "1.0.0", file: bytes(10, 0), fileName: "../x" })).toThrow(/file name/);
    expect(() => service.addFirmware("pk/D", { version: "1.0.0", file: bytes(10, 0) })).toThrow(/product key/);
  });
});

describe("the file endpoint", () => {
  const file = bytes(10_000, 9);
  let url: string;
  beforeAll(() => {
    url = files.origin + service.addFirmware("pkF", { version: "2.0.0", file }).fileUrl;
  });

  it("serves a whole file, and ranges with 206 and Content-Range", async () => {
    const all = await fetch(url);
    expect(all.status).toBe(200);
    expect(all.headers.get("accept-ranges")).toBe("bytes");
    expect(new Uint8Array(await all.arrayBuffer())).toEqual(file);

    const mid = await fetch(url, { headers: { range: "bytes=100-4195" } });
    expect(mid.status).toBe(206);
    expect(mid.headers.get("content-range")).toBe("bytes 100-4195/10000");
    expect(new Uint8Array(await mid.arrayBuffer())).toEqual(file.subarray(100, 4196));

    const open = await fetch(url, { headers: { range: "bytes=9000-" } });
    expect(open.headers.get("content-range")).toBe("bytes 9000-9999/10000");
    expect((await open.arrayBuffer()).byteLength).toBe(1000);

    const past = await fetch(url, { headers: { range: "bytes=9990-20000" } });
    expect(past.headers.get("content-range")).toBe("bytes 9990-9999/10000");
    expect((await past.arrayBuffer()).byteLength).toBe(10);

    const suffix = await fetch(url, { headers: { range: "bytes=-16" } });
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(file.subarray(9984));
  });

  it("answers 416 to a range past the end, 404 to an unknown path, 405 to POST", async () => {
    const beyond = await fetch(url, { headers: { range: "bytes=10000-" } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe("bytes */10000");
    await beyond.arrayBuffer();
    expect((await fetch(files.origin + "/pkF/ota/nothing.bin")).status).toBe(404);
    expect((await fetch(url, { method: "POST" })).status).toBe(405);
    expect(parseRange("bytes=0-1,5-6", 10)).toBeUndefined();
    expect(parseRange("items=0-1", 10)).toBeUndefined();
    expect(parseRange("bytes=-0", 10)).toBe("unsatisfiable");
  });
});

describe("a simulated device against EnosService", () => {
  it("finds 1.0.1 through getversion by itself, installs it, and informs 1.0.1", async () => {
    const v101 = appImage("1.0.1", 20000);
    service.addFirmware("pkSim", { version: "1.0.1", file: v101 });
    const d = new SimDevice({
      thing: "enos-sim-1",
      brokerUrl: broker.url,
      keys: {},
      cloud: { kind: "enos", productKey: "pkSim", deviceKey: "dkSim", fileBase: files.origin },
      config: { allowUnsigned: true },
    });
    try {
      await d.start();
      await until(() => service.device("pkSim", "dkSim")?.version === "1.0.1", 20_000, "inform 1.0.1");
      await d.settled();
      expect(d.version).toBe("1.0.1");
      const record = service.device("pkSim", "dkSim");
      expect(record?.informs.map((i) => i.version)).toEqual(expect.arrayContaining(["1.0.0", "1.0.1"]));
      expect(record?.getVersionRequests).toBeGreaterThanOrEqual(1);
      expect(record?.progress.some((p) => p.step === 100)).toBe(true);
      expect(service.fileRequests.some((r) => r.path === "/pkSim/ota/1.0.1.bin" && (r.status === 200 || r.status === 206))).toBe(true);
    } finally {
      await d.powerCut();
    }
  });
});
