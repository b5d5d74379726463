/**
 * The desktop MQTT side of transfers: NodeMqtt (the Mqtt port over mqtt.js) against an
 * in-process aedes broker, and the local AWS IoT MQTT file-stream service answering a plain
 * mqtt.js client that plays the device.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type AddressInfo } from "node:net";
import { connectAsync, type MqttClient } from "mqtt";
import { decode, encode } from "cborg";
import { startBroker, type TestBroker } from "./support/broker.ts";
import { NodeMqtt } from "../hosts/sim/mqtt.ts";
import { isOtaError } from "../modules/errors.ts";
import { pattern } from "./contract/pattern.ts";
import {
  AwsStreamService,
  OUT_OF_RANGE_MESSAGE,
  publishPacketSize,
  streamTopics,
  type StreamAction,
  type StreamRequestInfo,
} from "../cloud/aws-streams.ts";

interface Received {
  topic: string;
  payload: Uint8Array;
}

/** Collects messages in arrival order; `until(n)` resolves once n have arrived. */
class Inbox {
  readonly messages: Received[] = [];
  readonly #waiters: { n: number; resolve: () => void }[] = [];
  push(topic: string, payload: Uint8Array): void {
    this.messages.push({ topic, payload });
    for (const w of [...this.#waiters]) {
      if (this.messages.length >= w.n) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }
  async until(n: number): Promise<Received[]> {
    if (this.messages.length < n) await new Promise<void>((resolve) => this.#waiters.push({ n, resolve }));
    return this.messages.slice(0, n);
  }
}

/** Connection changes in order; `until(n)` resolves once n have been reported. */
class ConnectionLog {
  readonly states: boolean[] = [];
  readonly #waiters: { n: number; resolve: () => void }[] = [];
  constructor(m: NodeMqtt) {
    m.onConnectionChange((up) => {
      this.states.push(up);
      for (const w of [...this.#waiters]) {
        if (this.states.length >= w.n) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  }
  async until(n: number): Promise<boolean[]> {
    if (this.states.length < n) await new Promise<void>((resolve) => this.#waiters.push({ n, resolve }));
    return this.states.slice(0, n);
  }
}

const closers: (() => Promise<unknown>)[] = [];
let clientCount = 0;

async function node(broker: TestBroker, options: { clean?: boolean; reconnectPeriod?: number } = {}): Promise<{ mqtt: NodeMqtt; inbox: Inbox }> {
  const mqtt = await NodeMqtt.connect(broker.url, { clientId: `node-${++clientCount}`, reconnectPeriod: 0, ...options });
  closers.push(() => mqtt.close());
  const inbox = new Inbox();
  mqtt.onMessage((topic, payload) => inbox.push(topic, payload));
  return { mqtt, inbox };
}

async function plain(broker: TestBroker): Promise<{ client: MqttClient; inbox: Inbox }> {
  const client = await connectAsync(broker.url, { clientId: `plain-${++clientCount}`, protocolVersion: 4, reconnectPeriod: 0 });
  closers.push(() => client.endAsync(true));
  const inbox = new Inbox();
  client.on("message", (topic, payload) => inbox.push(topic, new Uint8Array(payload)));
  return { client, inbox };
}

async function rejection<T>(promise: Promise<T>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await broker.close();
});

describe("NodeMqtt over aedes", () => {
  it("subscribes and publishes at QoS 0 and 1, and receives its own messages", async () => {
    const { mqtt, inbox } = await node(broker);
    await mqtt.subscribe("dev/a/+", 1);
    await mqtt.publish("dev/a/zero", "q0", 0);
    await mqtt.publish("dev/a/one", Uint8Array.of(1, 2, 3), 1);
    const got = await inbox.until(2);
    expect(got.map((m) => m.topic)).toEqual(["dev/a/zero", "dev/a/one"]);
    expect(new TextDecoder().decode(got[0].payload)).toBe("q0");
    expect([...got[1].payload]).toEqual([1, 2, 3]);
  });

  it("delivers the messages of one publisher and QoS in the order they were published", async () => {
    const { mqtt, inbox } = await node(broker);
    const sender = await node(broker);
    await mqtt.subscribe("dev/order/+", 1);
    const count = 100;
    const numbers = Array.from({ length: count }, (_, i) => i);
    // not awaited one by one: mqtt.js gets them back to back
    await Promise.all(numbers.map((i) => sender.mqtt.publish("dev/order/q1", String(i), 1)));
    await Promise.all(numbers.map((i) => sender.mqtt.publish("dev/order/q0", String(i), 0)));
    const got = await inbox.until(2 * count);
    for (const topic of ["dev/order/q1", "dev/order/q0"]) {
      const values = got.filter((m) => m.topic === topic).map((m) => Number(new TextDecoder().decode(m.payload)));
      expect(values).toEqual(numbers);
    }
  });

  it("carries binary payloads exactly, as plain Uint8Array copies", async () => {
    const { mqtt, inbox } = await node(broker);
    await mqtt.subscribe("dev/bin", 0);
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const big = pattern(300_000, 7);
    const offset = pattern(64, 9).subarray(10, 40); // a view with a byte offset
    await mqtt.publish("dev/bin", all, 1);
    await mqtt.publish("dev/bin", new Uint8Array(0), 1);
    await mqtt.publish("dev/bin", big, 1);
    await mqtt.publish("dev/bin", offset, 0);
    const got = await inbox.until(4);
    expect(got[0].payload).toEqual(all);
    expect(got[1].payload.length).toBe(0);
    expect(Buffer.from(got[2].payload).equals(Buffer.from(big))).toBe(true);
    expect(got[3].payload).toEqual(offset);
    for (const m of got) expect(Object.getPrototypeOf(m.payload)).toBe(Uint8Array.prototype);
  });

  it("rejects topics MQTT forbids with bad-argument, before sending anything", async () => {
    const { mqtt } = await node(broker);
    const long = "a".repeat(65_536);
    for (const topic of ["", "a/+", "a/#", "+", long, "a\u0000b", "bad\uD800"]) {
      expect(isOtaError(await rejection(mqtt.publish(topic, "x", 0)), "bad-argument"), JSON.stringify(topic.slice(0, 8))).toBe(true);
    }
    for (const filter of ["", "a/#/b", "a#", "a+/b", "a/b+", long]) {
      expect(isOtaError(await rejection(mqtt.subscribe(filter, 0)), "bad-argument"), JSON.stringify(filter.slice(0, 8))).toBe(true);
    }
    expect(isOtaError(await rejection(mqtt.publish("a/b", "x", 2 as 0)), "bad-argument")).toBe(true);
    // the same session still works, and these filters are fine
    await mqtt.subscribe("+/#", 0);
    await mqtt.subscribe("#", 1);
    await mqtt.publish("a".repeat(65_535), "x", 0);
  });

  it("fails to connect with network when nothing listens", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const e = await rejection(NodeMqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: "nobody" }));
    expect(isOtaError(e, "network")).toBe(true);
  });

  it("reports the broker going away, rejects while down, and comes back without resubscribing", async () => {
    const own = await startBroker();
    closers.push(() => own.close());
    const { mqtt, inbox } = await node(own, { clean: false, reconnectPeriod: 20 });
    const log = new ConnectionLog(mqtt);
    await mqtt.subscribe("dev/kept", 1);

    // The connection drops but the broker keeps the session: messages flow without SUBSCRIBE.
    own.dropConnections();
    expect(await log.until(2)).toEqual([false, true]);
    expect(mqtt.sessionPresent).toBe(true);
    const other = await node(own);
    await other.mqtt.publish("dev/kept", "after drop", 1);
    expect(new TextDecoder().decode((await inbox.until(1))[0].payload)).toBe("after drop");

    // The broker goes away: false, and everything rejects with network while down.
    await own.close();
    expect(await log.until(3)).toEqual([false, true, false]);
    expect(isOtaError(await rejection(mqtt.publish("dev/kept", "x", 0)), "network")).toBe(true);
    expect(isOtaError(await rejection(mqtt.publish("dev/kept", "x", 1)), "network")).toBe(true);
    expect(isOtaError(await rejection(mqtt.subscribe("dev/kept", 1)), "network")).toBe(true);

    // A new broker on the same port: true, no session, and no subscription until asked.
    const again = await startBroker({ port: own.port });
    closers.push(() => again.close());
    expect(await log.until(4)).toEqual([false, true, false, true]);
    expect(mqtt.sessionPresent).toBe(false);
    await mqtt.subscribe("dev/sentinel", 1);
    const sender = await node(again);
    await sender.mqtt.publish("dev/kept", "lost", 1);
    await sender.mqtt.publish("dev/sentinel", "here", 1);
    const got = await inbox.until(2);
    expect(got.map((m) => m.topic)).toEqual(["dev/kept", "dev/sentinel"]); // the first is from before
  });

  it("a refused SUBSCRIBE, and a PUBLISH still unacknowledged when the connection drops, reject with network", async () => {
    const own = await startBroker();
    closers.push(() => own.close());
    own.aedes.authorizeSubscribe = (_client, sub, done) => done(null, sub.topic === "dev/forbidden" ? null : sub);
    own.aedes.authorizePublish = (_client, packet, done) => {
      if (packet.topic !== "dev/held") done(null); // dev/held: never authorized, so never PUBACKed
    };
    const { mqtt } = await node(own);
    expect(isOtaError(await rejection(mqtt.subscribe("dev/forbidden", 1)), "network")).toBe(true);
    await mqtt.subscribe("dev/allowed", 1);
    await mqtt.publish("dev/allowed", "fine", 1);
    const held = rejection(mqtt.publish("dev/held", "waits", 1));
    const log = new ConnectionLog(mqtt);
    own.dropConnections();
    expect(await log.until(1)).toEqual([false]);
    expect(isOtaError(await held, "network")).toBe(true);
  });

  it("close() ends the session: false is reported and later calls reject with network", async () => {
    const { mqtt } = await node(broker);
    const log = new ConnectionLog(mqtt);
    await mqtt.close();
    expect(await log.until(1)).toEqual([false]);
    expect(mqtt.connected).toBe(false);
    expect(isOtaError(await rejection(mqtt.publish("dev/x", "x", 1)), "network")).toBe(true);
    await mqtt.close(); // idempotent
  });
});

describe("AwsStreamService (CBOR) with an mqtt.js device", () => {
  const thing = "sim-device-1";
  const streamId = "AFR_OTA-test-stream";
  const topics = streamTopics(thing, streamId);
  const file = pattern(10_000, 0x10ad); // 10 blocks of 1 KB, the last one 784 bytes
  const other = pattern(3000, 0x2222);
  const big = pattern(300_000, 0x3333);
  let service: AwsStreamService;
  let hook: ((r: StreamRequestInfo) => StreamAction | undefined) | undefined;
  let device: { client: MqttClient; inbox: Inbox };
  let seen = 0;

  beforeAll(async () => {
    service = new AwsStreamService(broker.aedes, { onRequest: (r) => hook?.(r) });
    await service.start();
    service.addStream(thing, streamId, [
      { fileId: 0, data: file },
      { fileId: 3, data: other },
    ]);
    service.addStream("*", "shared", [{ fileId: 1, data: big }], { description: "for everyone" });
    service.addStream("someone-else", "private", [{ fileId: 0, data: other }]);
    device = await plain(broker);
    await device.client.subscribeAsync(
      [topics.data, topics.rejected, topics.description, ...Object.values(streamTopics(thing, "shared")), ...Object.values(streamTopics(thing, "private"))].filter(
        (t) => !t.endsWith("/get/cbor") && !t.endsWith("/describe/cbor"),
      ),
      { qos: 0 },
    );
  });
  afterAll(async () => {
    await service.stop();
  });

  /** Sends one request (an object to encode, or raw bytes) and returns the next `count` messages. */
  async function ask(request: unknown, count: number, topic = topics.get): Promise<Received[]> {
    const bytes = request instanceof Uint8Array ? request : encode(request);
    await device.client.publishAsync(topic, Buffer.from(bytes), { qos: 0 });
    const all = await device.inbox.until(seen + count);
    const mine = all.slice(seen);
    seen += count;
    return mine;
  }

  const blocks = (messages: Received[]) => messages.map((m) => decode(m.payload) as Record<string, unknown>);

  async function rejected(request: unknown, topic = topics.get): Promise<Record<string, unknown>> {
    const [m] = await ask(request, 1, topic);
    expect(m.topic).toBe(topic.replace(/\/(get|describe)\/cbor$/, "/rejected/cbor"));
    return decode(m.payload) as Record<string, unknown>;
  }

  it("GetStream with a full bitmap returns every block in order, exactly, the last one short", async () => {
    const got = await ask({ c: "rdy", f: 0, l: 1024, o: 0, b: Uint8Array.of(0xff, 0x03), n: 10 }, 10);
    expect(got.every((m) => m.topic === topics.data)).toBe(true);
    const msgs = blocks(got);
    expect(msgs.map((m) => m.i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(msgs.map((m) => m.l)).toEqual([1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 784]);
    for (const m of msgs) {
      expect(m.f).toBe(0);
      expect(m.c).toBe("rdy");
      expect((m.p as Uint8Array).length).toBe(m.l);
    }
    const joined = new Uint8Array(file.length);
    for (const m of msgs) joined.set(m.p as Uint8Array, (m.i as number) * 1024);
    expect(joined).toEqual(file);
  });

  it("n without a bitmap sends n consecutive blocks from the offset; no token, no c", async () => {
    const msgs = blocks(await ask({ f: 0, l: 1024, o: 7, n: 3 }, 3));
    expect(msgs.map((m) => m.i)).toEqual([7, 8, 9]);
    expect(msgs[2].p).toEqual(file.subarray(9 * 1024));
    expect(msgs.every((m) => !("c" in m))).toBe(true);
  });

  it("a bitmap selecting some blocks returns only those, in bitmap order, counted from o", async () => {
    // bits 0, 1, 4 of byte 0 and bit 0 of byte 1, from offset 1: blocks 1, 2, 5, 9
    const msgs = blocks(await ask({ c: "sel", f: 0, l: 1024, o: 1, b: Uint8Array.of(0b0001_0011, 0b0000_0001) }, 4));
    expect(msgs.map((m) => m.i)).toEqual([1, 2, 5, 9]);
    for (const m of msgs) expect(m.p).toEqual(file.subarray((m.i as number) * 1024, (m.i as number) * 1024 + (m.l as number)));
  });

  it("n caps a bitmap request; 128 KB caps every request; maxBlocksPerRequest caps further", async () => {
    expect(blocks(await ask({ f: 0, l: 1024, b: Uint8Array.of(0xfe, 0x03), n: 3 }, 3)).map((m) => m.i)).toEqual([1, 2, 3]);
    // 300,000 bytes in 4 KB blocks = 74 blocks; the bitmap asks for all, AWS sends 131072/4096 = 32
    const bitmap = new Uint8Array(10).fill(0xff);
    bitmap[9] = 0x03;
    const sharedTopics = streamTopics(thing, "shared");
    const first = blocks(await ask({ f: 1, l: 4096, b: bitmap }, 32, sharedTopics.get));
    expect(first.map((m) => m.i)).toEqual(Array.from({ length: 32 }, (_, i) => i));
    // the sentinel shows nothing else came for that request
    const [sentinel] = blocks(await ask({ c: "next", f: 0, l: 1024, n: 1 }, 1));
    expect(sentinel).toMatchObject({ c: "next", i: 0 });

    // a second service needs its own broker: every service answers every thing's requests
    const ownBroker = await startBroker();
    closers.push(() => ownBroker.close());
    const strict = new AwsStreamService(ownBroker.aedes, { maxBlocksPerRequest: 2 });
    const thing2 = "strict-device";
    strict.addStream(thing2, "s", [{ fileId: 0, data: file }]);
    await strict.start();
    try {
      const { client, inbox } = await plain(ownBroker);
      const t = streamTopics(thing2, "s");
      await client.subscribeAsync([t.data, t.rejected], { qos: 0 });
      await client.publishAsync(t.get, Buffer.from(encode({ f: 0, l: 1024, n: 5 })));
      await client.publishAsync(t.get, Buffer.from(encode({ c: "after", f: 0, l: 1024, o: 9, n: 1 })));
      const got = (await inbox.until(3)).map((m) => decode(m.payload) as Record<string, unknown>);
      expect(got.map((m) => m.i)).toEqual([0, 1, 9]);
    } finally {
      await strict.stop();
    }
  });

  it("rejects with AWS's error codes, echoing a valid client token", async () => {
    const ok = { c: "tok", f: 0, l: 1024, o: 0, n: 1 };
    const cases: [unknown, string, boolean][] = [
      [{ ...ok, f: 7 }, "ResourceNotFound", true],
      [{ ...ok, f: 300 }, "InvalidRequest", true],
      [{ ...ok, f: "0" }, "InvalidRequest", true],
      [{ c: "tok", l: 1024 }, "InvalidRequest", true],
      [{ c: "tok", f: 0 }, "InvalidRequest", true],
      [{ ...ok, l: 255 }, "BlockSizeOutOfBounds", true],
      [{ ...ok, l: 131_073 }, "BlockSizeOutOfBounds", true],
      [{ ...ok, o: 98_305 }, "OffsetOutOfBounds", true],
      [{ ...ok, o: -1 }, "OffsetOutOfBounds", true],
      [{ ...ok, n: 98_305 }, "BlockCountLimitExceeded", true],
      [{ ...ok, b: new Uint8Array(12_288) }, "BlockBitmapLimitExceeded", true],
      [{ ...ok, b: "0xff" }, "InvalidRequest", true],
      [{ ...ok, s: 2 }, "VersionMismatch", true],
      [[1, 2, 3], "InvalidRequest", false],
      [{ ...ok, c: "x".repeat(65) }, "InvalidRequest", false],
      [{ ...ok, c: 17 }, "InvalidRequest", false],
    ];
    for (const [request, code, echoes] of cases) {
      const r = await rejected(request);
      expect({ request, o: r.o, code: r.code }).toEqual({ request, o: code, code });
      expect(typeof r.m).toBe("string");
      expect(r.message).toBe(r.m);
      if (echoes) expect([r.c, r.clientToken]).toEqual(["tok", "tok"]);
      else expect("c" in r || "clientToken" in r).toBe(false);
    }
    // a valid version and a 64-byte token are fine
    const [m] = blocks(await ask({ ...ok, s: 1, c: "y".repeat(64) }, 1));
    expect(m.c).toBe("y".repeat(64));
  });

  it("rejects malformed CBOR with InvalidCbor as an indefinite-length map, like AWS", async () => {
    for (const raw of [Uint8Array.of(0xa2, 0x61, 0x66), Uint8Array.of(0xff), Uint8Array.of(0x1c), new Uint8Array(0)]) {
      const [m] = await ask(raw, 1);
      expect(m.topic).toBe(topics.rejected);
      expect(m.payload[0]).toBe(0xbf);
      expect(m.payload[m.payload.length - 1]).toBe(0xff);
      expect(decode(m.payload)).toEqual({ code: "InvalidCbor", o: "InvalidCbor", message: "Invalid CBOR message", m: "Invalid CBOR message" });
    }
  });

  it("rejects requests reaching past the end of the file with InvalidRequest, sending nothing", async () => {
    for (const request of [
      { c: "end", f: 0, l: 1024, o: 10, n: 1 }, // offset at the end
      { c: "end", f: 0, l: 1024, o: 8, n: 3 }, // 8, 9, 10
      { c: "end", f: 0, l: 1024, b: Uint8Array.of(0x00, 0x04) }, // bit 10
      { c: "end", f: 3, l: 1024 }, // n defaults to 128 blocks of a 3-block file
    ]) {
      const r = await rejected(request);
      expect(r).toMatchObject({ o: "InvalidRequest", m: OUT_OF_RANGE_MESSAGE, c: "end" });
    }
    // blocks exactly up to the end are fine
    expect(blocks(await ask({ f: 3, l: 1024, n: 3 }, 3)).map((m) => m.l)).toEqual([1024, 1024, 952]);
  });

  it("rejects unknown streams, streams of another thing, and invalid topics", async () => {
    expect(await rejected({ c: "t", f: 0, l: 1024, n: 1 }, streamTopics(thing, "private").get)).toMatchObject({ o: "ResourceNotFound", c: "t" });
    const invalid = `$aws/things/${thing}/streams/bad.stream/get/cbor`;
    await device.client.subscribeAsync(`$aws/things/${thing}/streams/bad.stream/rejected/cbor`, { qos: 0 });
    expect(await rejected({ c: "t", f: 0, l: 1024, n: 1 }, invalid)).toMatchObject({ o: "InvalidTopic", c: "t" });
  });

  it("answers DescribeStream with the version, description and files", async () => {
    const sharedTopics = streamTopics(thing, "shared");
    const [m] = await ask({ c: "d1" }, 1, sharedTopics.describe);
    expect(m.topic).toBe(sharedTopics.description);
    expect(decode(m.payload)).toEqual({ c: "d1", s: 1, d: "for everyone", r: [{ f: 1, z: big.length }] });
  });

  it("counts requests, blocks, payload bytes and bytes on the wire", async () => {
    service.resetCounters();
    const got = await ask({ c: "cnt", f: 0, l: 1024, b: Uint8Array.of(0xff, 0x03) }, 10);
    await rejected({ c: "cnt", f: 0, l: 1 });
    const c = service.counters;
    expect(c.requests).toBe(2);
    expect(c.blocksSent).toBe(10);
    expect(c.payloadBytes).toBe(file.length);
    expect(c.rejections).toBe(1);
    expect(c.rejectionsByCode).toEqual({ BlockSizeOutOfBounds: 1 });
    const last = device.inbox.messages[seen - 1];
    const sent = [...got, last];
    expect(c.messageBytes).toBe(sent.reduce((sum, m) => sum + Buffer.byteLength(m.topic) + m.payload.length, 0));
    expect(c.wireBytes).toBe(sent.reduce((sum, m) => sum + publishPacketSize(m.topic, m.payload.length, 0), 0));
    expect(c.requestBytes).toBeGreaterThan(0);
    // bytes on the wire per image byte, as a benchmark would compute it
    const perImageByte = got.reduce((s, m) => s + publishPacketSize(m.topic, m.payload.length, 0), 0) / file.length;
    expect(perImageByte).toBeGreaterThan(1);
    expect(perImageByte).toBeLessThan(1.2);
  });

  describe("hostile behaviour through onRequest", () => {
    afterAll(() => {
      hook = undefined;
    });

    it("drop: the request gets no answer at all", async () => {
      hook = (r) => (r.request?.c === "dropme" ? { drop: true } : undefined);
      await device.client.publishAsync(topics.get, Buffer.from(encode({ c: "dropme", f: 0, l: 1024, n: 2 })));
      const [m] = blocks(await ask({ c: "kept", f: 0, l: 1024, n: 1 }, 1));
      expect(m.c).toBe("kept"); // the first message after the dropped request answers the next one
    });

    it("mutate: wrong file id, index, length, extra and missing keys, left-out blocks", async () => {
      hook = () => ({
        mutate: (message, block) => {
          if (block.index === 0) return { ...message, f: 9 };
          if (block.index === 1) return { ...message, i: 4000 };
          if (block.index === 2) return { ...message, l: 1000, extra: "x" };
          if (block.index === 3) return { ...message, p: undefined };
          if (block.index === 4) return undefined;
          return Uint8Array.of(0x01, 0x02);
        },
      });
      const got = await ask({ f: 0, l: 1024, n: 6 }, 5);
      const msgs = got.slice(0, 4).map((m) => decode(m.payload) as Record<string, unknown>);
      expect(msgs[0]).toMatchObject({ f: 9, i: 0 });
      expect(msgs[1]).toMatchObject({ f: 0, i: 4000 });
      expect(msgs[2]).toMatchObject({ l: 1000, extra: "x", i: 2 });
      expect(msgs[2].p).toEqual(file.subarray(2048, 3072));
      expect("p" in msgs[3]).toBe(false);
      expect([...got[4].payload]).toEqual([0x01, 0x02]); // block 5 as raw bytes; block 4 left out
    });

    it("raw: malformed CBOR instead of an answer, on data or rejected", async () => {
      hook = (r) => (r.request?.c === "raw" ? { raw: Uint8Array.of(0xbf, 0x61), rawTopic: r.request.n === 2 ? "rejected" : "data" } : undefined);
      const [a] = await ask({ c: "raw", f: 0, l: 1024, n: 1 }, 1);
      expect(a.topic).toBe(topics.data);
      expect([...a.payload]).toEqual([0xbf, 0x61]);
      const [b] = await ask({ c: "raw", f: 0, l: 1024, n: 2 }, 1);
      expect(b.topic).toBe(topics.rejected);
    });

    it("duplicate: every block twice in a row", async () => {
      hook = () => ({ duplicate: true });
      expect(blocks(await ask({ f: 0, l: 1024, o: 3, n: 2 }, 4)).map((m) => m.i)).toEqual([3, 3, 4, 4]);
    });

    it("order: blocks out of order, as a real broker may deliver them", async () => {
      hook = () => ({ order: (b) => [...b].reverse() });
      expect(blocks(await ask({ f: 0, l: 1024, o: 2, n: 4 }, 4)).map((m) => m.i)).toEqual([5, 4, 3, 2]);
    });

    it("reject: any code on demand; the hook sees what the service would have done", async () => {
      const seenInfo: StreamRequestInfo[] = [];
      hook = (r) => {
        seenInfo.push(r);
        return { reject: { code: "InternalError", message: "try later" } };
      };
      expect(await rejected({ c: "r", f: 0, l: 1024, n: 2 })).toMatchObject({ o: "InternalError", m: "try later", c: "r" });
      expect(seenInfo[0]).toMatchObject({ thing, streamId, blocks: [0, 1], rejection: undefined, request: { c: "r", f: 0, l: 1024, o: 0, n: 2 } });
      hook = (r) => {
        seenInfo.push(r);
        return undefined;
      };
      await rejected({ c: "r", f: 0, l: 10 });
      expect(seenInfo[1]).toMatchObject({ request: undefined, blocks: [], rejection: { code: "BlockSizeOutOfBounds" } });
    });
  });

  it("rejectionFormat documented sends {o, m, c}; the service also works through NodeMqtt", async () => {
    const ownBroker = await startBroker();
    closers.push(() => ownBroker.close());
    const documented = new AwsStreamService(ownBroker.aedes, { rejectionFormat: "documented", qos: 1 });
    documented.addStream("node-device", "doc", [{ fileId: 0, data: other }]);
    await documented.start();
    try {
      const { mqtt, inbox } = await node(ownBroker);
      const t = streamTopics("node-device", "doc");
      await mqtt.subscribe(t.data, 1);
      await mqtt.subscribe(t.rejected, 1);
      await mqtt.publish(t.get, encode({ c: "n", f: 0, l: 256 }), 0); // 128 blocks asked, 12 exist
      await mqtt.publish(t.get, encode({ c: "n", f: 0, l: 256, n: 12 }), 1);
      const got = await inbox.until(13);
      expect(got[0].topic).toBe(t.rejected);
      expect(got[0].payload[0]).not.toBe(0xbf);
      expect(decode(got[0].payload)).toEqual({ o: "InvalidRequest", m: OUT_OF_RANGE_MESSAGE, c: "n" });
      const joined = new Uint8Array(other.length);
      for (const m of got.slice(1).map((x) => decode(x.payload) as { i: number; p: Uint8Array })) joined.set(m.p, m.i * 256);
      expect(joined).toEqual(other);
      expect(documented.counters.wireBytes).toBe(got.reduce((s, m) => s + publishPacketSize(m.topic, m.payload.length, 1), 0));
    } finally {
      await documented.stop();
    }
  });
});
