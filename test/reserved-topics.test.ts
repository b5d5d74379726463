/**
 * cloud/reserved-topics.ts through `xs-ota cloud`'s embedded broker (startCloud): as on AWS IoT
 * Core, a Jobs or stream request's answer reaches the client that published the request, with or
 * without a subscription, exactly once, and no other client; notify-next still needs a
 * subscription. The clients are plain mqtt.js clients, not this repository's agent.
 *
 * "Nothing arrived" is checked with a marker: after the message that must not come would have
 * been sent, the same client asks something else and waits for that answer, which the broker
 * writes to the connection after anything sent to it before.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { decode, encode } from "cborg";
import { startCloud, type Cloud } from "../cloud/server.ts";
import { answerTopics, topicMatches } from "../cloud/reserved-topics.ts";
import type { Mqtt } from "../modules/ports/mqtt.ts";
import { SIGNER_LABEL } from "../cloud/server.ts";
import { appImage } from "./contract/boot-fixture.ts";
import { SimDevice, until } from "./support/sim-device.ts";

interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
}

interface Raw {
  client: MqttClient;
  got: Received[];
}

const root = mkdtempSync(join(tmpdir(), "xs-ota-reserved-"));
let cloud: Cloud;
const raws: Raw[] = [];
const devices: SimDevice[] = [];
let tokens = 0;

beforeAll(async () => {
  cloud = await startCloud({ dataDir: join(root, "data"), mqttPort: 0, mqttsPort: 0, httpsPort: 0, httpPort: 0, controlPort: 0 });
});
afterAll(async () => {
  for (const r of raws) await r.client.endAsync();
  for (const d of devices) await d.powerCut();
  await cloud?.close();
  rmSync(root, { recursive: true, force: true });
});

async function raw(clientId: string): Promise<Raw> {
  const client = await connectAsync(cloud.urls.mqtt, { clientId, protocolVersion: 4, reconnectPeriod: 0 });
  const r: Raw = { client, got: [] };
  client.on("message", (topic, payload, packet) => r.got.push({ topic, payload, qos: packet.qos }));
  raws.push(r);
  return r;
}

const json = (m: Received) => JSON.parse(m.payload.toString("utf8")) as Record<string, unknown>;
const jobs = (thing: string, rest: string) => `$aws/things/${thing}/jobs/${rest}`;

/** Publishes a Jobs request with a fresh token; the answer carrying that token. */
async function ask(r: Raw, topic: string, body: Record<string, unknown> = {}): Promise<{ outcome: string; body: Record<string, unknown>; qos: number }> {
  const token = `t${++tokens}`;
  await r.client.publishAsync(topic, JSON.stringify({ clientToken: token, ...body }), { qos: 1 });
  let found: Received | undefined;
  const mine = (m: Received) => (m.topic === `${topic}/accepted` || m.topic === `${topic}/rejected`) && json(m)["clientToken"] === token;
  await until(() => (found = r.got.find(mine)) !== undefined, 5000, `the answer on ${topic}`);
  const m = found as Received;
  return { outcome: m.topic.slice(topic.length + 1), body: json(m), qos: m.qos };
}

function cborMessages(r: Raw, topic: string): Record<string, unknown>[] {
  return r.got.filter((m) => m.topic === topic).map((m) => decode(new Uint8Array(m.payload)) as Record<string, unknown>);
}

describe("answer topics", () => {
  it("maps each Jobs and stream request to the topics AWS answers it on, and nothing else", () => {
    expect(answerTopics("$aws/things/T/jobs/$next/get")).toEqual(["$aws/things/T/jobs/$next/get/accepted", "$aws/things/T/jobs/$next/get/rejected"]);
    expect(answerTopics("$aws/things/T/jobs/j1/update")).toEqual(["$aws/things/T/jobs/j1/update/accepted", "$aws/things/T/jobs/j1/update/rejected"]);
    expect(answerTopics("$aws/things/T/jobs/get")).toEqual(["$aws/things/T/jobs/get/accepted", "$aws/things/T/jobs/get/rejected"]);
    expect(answerTopics("$aws/things/T/jobs/start-next")).toEqual(["$aws/things/T/jobs/start-next/accepted", "$aws/things/T/jobs/start-next/rejected"]);
    expect(answerTopics("$aws/things/T/streams/S/get/cbor")).toEqual(["$aws/things/T/streams/S/data/cbor", "$aws/things/T/streams/S/rejected/cbor"]);
    expect(answerTopics("$aws/things/T/streams/S/describe/json")).toEqual(["$aws/things/T/streams/S/description/json", "$aws/things/T/streams/S/rejected/json"]);
    for (const other of ["$aws/things/T/jobs/notify-next", "$aws/things/T/jobs/j1/update/accepted", "$aws/things/T/streams/S/data/cbor", "things/T/jobs/$next/get", "$aws/things//jobs/get"]) {
      expect(answerTopics(other), other).toEqual([]);
    }
  });

  it("matches MQTT filters as a broker does", () => {
    expect(topicMatches("$aws/things/+/jobs/#", "$aws/things/T/jobs/j/update/accepted")).toBe(true);
    expect(topicMatches("$aws/things/T/jobs/#", "$aws/things/T/jobs")).toBe(true);
    expect(topicMatches("$aws/things/+/jobs", "$aws/things/T/jobs/get")).toBe(false);
    expect(topicMatches("#", "$aws/things/T/jobs/get/accepted")).toBe(false);
    expect(topicMatches("+/things/T", "$aws/things/T")).toBe(false);
    expect(topicMatches("a/+/c", "a/b/c")).toBe(true);
    expect(topicMatches("a/+", "a")).toBe(false);
  });
});

describe("the embedded broker delivers AWS's reserved-topic answers", () => {
  it("a client that never subscribed gets its $next/get answer, with the job queued while it was away", async () => {
    await cloud.jobs.createJob({ jobId: "away-1", document: { operation: "test" }, targets: ["rt-away"] });
    const r = await raw("rt-away");
    const next = await ask(r, jobs("rt-away", "$next/get"));
    expect(next.outcome).toBe("accepted");
    expect(next.body["execution"]).toMatchObject({ jobId: "away-1", status: "QUEUED", jobDocument: { operation: "test" } });
    // The jobs service answers at QoS 1; without a subscription nothing lowers it.
    expect(next.qos).toBe(1);
  });

  it("update, start-next and a rejected update reach an unsubscribed client too", async () => {
    await cloud.jobs.createJob({ jobId: "upd-1", document: { operation: "test" }, targets: ["rt-upd"] });
    const r = await raw("rt-upd");
    const started = await ask(r, jobs("rt-upd", "start-next"));
    expect(started).toMatchObject({ outcome: "accepted", body: { execution: { jobId: "upd-1", status: "IN_PROGRESS" } } });
    const updated = await ask(r, jobs("rt-upd", "upd-1/update"), { status: "SUCCEEDED", statusDetails: { reason: "ok" } });
    expect(updated.outcome).toBe("accepted");
    expect(cloud.jobs.execution("rt-upd", "upd-1")?.status).toBe("SUCCEEDED");
    const refused = await ask(r, jobs("rt-upd", "no-such-job/update"), { status: "IN_PROGRESS" });
    expect(refused).toMatchObject({ outcome: "rejected", body: { code: "ResourceNotFound" } });
  });

  it("a stream's blocks, description and rejection reach the client that asked, unsubscribed", async () => {
    const data = new Uint8Array(600).map((_, i) => i % 251);
    cloud.streams.addStream("rt-stream", "fw-s", [{ fileId: 0, data }]);
    const r = await raw("rt-stream");
    const base = "$aws/things/rt-stream/streams";
    await r.client.publishAsync(`${base}/fw-s/get/cbor`, Buffer.from(encode({ c: "g1", f: 0, l: 256, o: 0, n: 3 })), { qos: 0 });
    await until(() => cborMessages(r, `${base}/fw-s/data/cbor`).length === 3, 5000, "three blocks");
    const blocks = cborMessages(r, `${base}/fw-s/data/cbor`).sort((a, b) => Number(a["i"]) - Number(b["i"]));
    expect(blocks.map((b) => [b["c"], b["i"], (b["p"] as Uint8Array).length])).toEqual([["g1", 0, 256], ["g1", 1, 256], ["g1", 2, 88]]);
    expect(Buffer.concat(blocks.map((b) => b["p"] as Uint8Array)).equals(Buffer.from(data))).toBe(true);

    await r.client.publishAsync(`${base}/fw-s/describe/cbor`, Buffer.from(encode({ c: "d1" })), { qos: 0 });
    await until(() => cborMessages(r, `${base}/fw-s/description/cbor`).length === 1, 5000, "the description");
    expect(cborMessages(r, `${base}/fw-s/description/cbor`)[0]).toMatchObject({ c: "d1", r: [{ f: 0, z: 600 }] });

    await r.client.publishAsync(`${base}/missing/get/cbor`, Buffer.from(encode({ c: "g2", f: 0, l: 256, o: 0, n: 1 })), { qos: 0 });
    await until(() => cborMessages(r, `${base}/missing/rejected/cbor`).length === 1, 5000, "the rejection");
    expect(cborMessages(r, `${base}/missing/rejected/cbor`)[0]).toMatchObject({ o: "ResourceNotFound" });
    expect(cborMessages(r, `${base}/fw-s/data/cbor`)).toHaveLength(3);
  });

  it("a client subscribed to the answer topic (twice over) gets one copy, at its subscription's QoS", async () => {
    const r = await raw("rt-sub");
    await r.client.subscribeAsync([jobs("rt-sub", "$next/get/accepted"), jobs("rt-sub", "#")], { qos: 0 });
    const first = await ask(r, jobs("rt-sub", "$next/get"));
    expect(first.qos).toBe(0);
    await ask(r, jobs("rt-sub", "$next/get"));
    const firstToken = first.body["clientToken"];
    expect(r.got.filter((m) => m.topic.endsWith("/accepted") && json(m)["clientToken"] === firstToken)).toHaveLength(1);
  });

  it("no other client gets someone else's answer, even subscribed to it; notify-next needs a subscription", async () => {
    const asker = await raw("rt-asker");
    const other = await raw("rt-other");
    await other.client.subscribeAsync(["$aws/things/rt-asker/jobs/#", "$aws/things/+/streams/#"], { qos: 1 });
    cloud.streams.addStream("rt-asker", "fw-o", [{ fileId: 0, data: new Uint8Array(300) }]);

    await cloud.jobs.createJob({ jobId: "other-1", document: { operation: "test" }, targets: ["rt-asker"] });
    const next = await ask(asker, jobs("rt-asker", "$next/get"));
    expect(next.body["execution"]).toMatchObject({ jobId: "other-1" });
    await asker.client.publishAsync("$aws/things/rt-asker/streams/fw-o/get/cbor", Buffer.from(encode({ c: "o1", f: 0, l: 256, o: 0, n: 2 })), { qos: 0 });
    await until(() => cborMessages(asker, "$aws/things/rt-asker/streams/fw-o/data/cbor").length === 2, 5000, "the asker's blocks");

    // The other client's own answer comes after anything the broker would have sent it before.
    await ask(other, jobs("rt-other", "$next/get"));
    // (It sees the asker's requests: those go through the broker here, as ordinary messages.)
    const answerOrNotice = (t: string) => /\/(accepted|rejected|data|description)(\/cbor)?$|\/notify-next$/.test(t);
    expect(other.got.map((m) => m.topic).filter((t) => t.includes("rt-asker") && answerOrNotice(t))).toEqual(["$aws/things/rt-asker/jobs/notify-next"]);
    // notify-next is an ordinary message: the subscriber had it, the unsubscribed asker did not.
    expect(json(other.got.find((m) => m.topic === "$aws/things/rt-asker/jobs/notify-next") as Received)["execution"]).toMatchObject({ jobId: "other-1" });
    expect(asker.got.some((m) => m.topic.endsWith("/notify-next"))).toBe(false);
  });
});

describe("the agent needs no subscription AWS IoT Core does not need", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const keyPath = join(root, "key.pem");
  const firmware = join(root, "app-1.0.1.bin");

  /** The session, but SUBSCRIBE reaches the broker for notify-next only (as AWS's C agent subscribes). */
  const notifyOnly = (subscribed: string[]) => (mqtt: Mqtt): Mqtt => ({
    subscribe: (topic, qos) => (topic.endsWith("/notify-next") ? (subscribed.push(topic), mqtt.subscribe(topic, qos)) : Promise.resolve()),
    publish: (topic, payload, qos) => mqtt.publish(topic, payload, qos),
    onMessage: (handler) => mqtt.onMessage(handler),
    onConnectionChange: (handler) => mqtt.onConnectionChange(handler),
  });

  it.each(["mqtt", "http"] as const)("updates over %s with answers it never subscribed to", async (protocol) => {
    writeFileSync(keyPath, privateKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(firmware, appImage("1.0.1", 12_000));
    const thing = `rt-agent-${protocol}`;
    const res = await fetch(`${cloud.urls.control}/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ thing, file: firmware, key: keyPath, protocol, jobId: `agent-${protocol}` }),
    });
    expect(res.status).toBe(201);
    const subscribed: string[] = [];
    const d = new SimDevice({
      thing,
      brokerUrl: cloud.urls.mqtt,
      keys: { [SIGNER_LABEL]: publicKey.export({ type: "spki", format: "pem" }).toString() },
      config: { ca: cloud.caCert },
      wrapMqtt: notifyOnly(subscribed),
    });
    devices.push(d);
    await d.start();
    await until(() => cloud.jobs.execution(thing, `agent-${protocol}`)?.status === "SUCCEEDED", 20_000, "SUCCEEDED");
    await d.settled();
    expect(d.version).toBe("1.0.1");
    expect(new Set(subscribed)).toEqual(new Set([`$aws/things/${thing}/jobs/notify-next`]));
  }, 30_000);
});
