/**
 * cloud/broker-client.ts: MQTT topic-filter matching (against the standard's rules and against
 * what real brokers deliver), and the StreamBroker over an external broker: routing, QoS,
 * re-subscribing after the broker comes back, and clear failures when it cannot be reached.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { connectAsync, type MqttClient } from "mqtt";
import { BrokerClient, connectBroker, topicMatches } from "../cloud/broker-client.ts";
import type { BrokerPacket, BrokerPublish } from "../cloud/aws-streams.ts";
import { startBroker } from "./support/broker.ts";
import { mosquittoPath, startMosquitto, type TestMosquitto } from "./support/mosquitto.ts";
import { until } from "./support/sim-device.ts";

const hasMosquitto = mosquittoPath() !== undefined;

/** [filter, topic, matches] */
const CASES: [string, string, boolean][] = [
  ["a/b", "a/b", true],
  ["a/b", "a/c", false],
  ["a/b", "a/b/c", false],
  ["a/b/c", "a/b", false],
  ["A/b", "a/b", false],
  ["a/b", "a/b/", false],
  ["a/b/", "a/b/", true],
  ["a/+", "a/b", true],
  ["a/+", "a/", true],
  ["a/+", "a", false],
  ["a/+", "a/b/c", false],
  ["+/+", "/finance", true],
  ["/+", "/finance", true],
  ["+", "/finance", false],
  ["+", "a", true],
  ["+/b/+", "x/b/y", true],
  ["#", "a/b/c", true],
  ["#", "/", true],
  ["sport/tennis/player1/#", "sport/tennis/player1", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
  ["sport/#", "sport", true],
  ["sport/#", "sports", false],
  ["sport/+/#", "sport", false],
  ["sport/+/#", "sport/x", true],
  ["a/#", "ab/c", false],
  // Filters starting with a wildcard never match topics starting with "$".
  ["#", "$app/broker/uptime", false],
  ["+/monitor/Clients", "$app/monitor/Clients", false],
  ["+/things/T/jobs/notify-next", "$aws/things/T/jobs/notify-next", false],
  ["$app/#", "$app/monitor/Clients", true],
  ["$app/monitor/+", "$app/monitor/Clients", true],
  // "$" elsewhere is an ordinary character.
  ["a/+", "a/$x", true],
  ["a/#", "a/$x/y", true],
  // The services' own filters.
  ["$aws/things/+/jobs/+/get", "$aws/things/T/jobs/$next/get", true],
  ["$aws/things/+/jobs/+/get", "$aws/things/T/jobs/$next/get/accepted", false],
  ["$aws/things/+/jobs/start-next", "$aws/things/T/jobs/start-next", true],
  ["$aws/things/+/streams/+/get/cbor", "$aws/things/T/streams/S/get/cbor", true],
  ["$aws/things/+/streams/+/get/cbor", "$aws/things/T/streams/S/get/json", false],
  ["/sys/+/+/ota/device/inform", "/sys/pk/dk/ota/device/inform", true],
  ["/sys/+/+/ota/device/inform", "/sys/pk/dk/ota/device/inform_reply", false],
];

/**
 * Cases only for the function: brokers keep $SYS to themselves (Mosquitto drops a client's
 * PUBLISH to $SYS/..., aedes never acknowledges it), so no broker can be asked about them.
 */
const SYS_CASES: [string, string, boolean][] = [
  ["#", "$SYS/broker/uptime", false],
  ["+/broker/uptime", "$SYS/broker/uptime", false],
  ["$SYS/#", "$SYS/broker/uptime", true],
  ["$SYS/broker/+", "$SYS/broker/uptime", true],
];

describe("topicMatches", () => {
  it.each([...CASES, ...SYS_CASES])("%s vs %s: %s", (filter, topic, matches) => {
    expect(topicMatches(filter, topic)).toBe(matches);
  });
});

/**
 * Subscribes one client per filter, publishes every topic (QoS 1, one publisher, so each
 * subscriber gets them in order), then a marker: what each subscriber got before its marker is
 * what the broker matched.
 */
async function brokerMatches(url: string): Promise<Map<string, Set<string>>> {
  const filters = [...new Set(CASES.map(([f]) => f))];
  const topics = [...new Set(CASES.map(([, t]) => t))];
  const got = new Map<string, Set<string>>();
  const clients: MqttClient[] = [];
  try {
    const markers = new Set<string>();
    for (const [i, filter] of filters.entries()) {
      const c = await connectAsync(url, { clientId: `match-${i}`, protocolVersion: 4, reconnectPeriod: 0 });
      clients.push(c);
      const seen = new Set<string>();
      got.set(filter, seen);
      c.on("message", (topic) => {
        if (topic === "marker/end") markers.add(filter);
        else seen.add(topic);
      });
      await c.subscribeAsync([filter, "marker/end"], { qos: 1 });
    }
    const pub = await connectAsync(url, { clientId: "match-pub", protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(pub);
    for (const topic of topics) await pub.publishAsync(topic, "x", { qos: 1 });
    await pub.publishAsync("marker/end", "x", { qos: 1 });
    await until(() => markers.size === filters.length, 5000, "every subscriber's marker");
    return got;
  } finally {
    for (const c of clients) await c.endAsync();
  }
}

function expectAgreement(got: Map<string, Set<string>>): void {
  // Only the table's pairs count ("marker/end" and a broker's own messages are not among them).
  const disagreements = CASES.filter(([filter, topic, matches]) => (got.get(filter)?.has(topic) ?? false) !== matches);
  expect(disagreements).toEqual([]);
}

describe("topicMatches agrees with real brokers on every case", () => {
  it("aedes", async () => {
    const broker = await startBroker();
    try {
      expectAgreement(await brokerMatches(broker.url));
    } finally {
      await broker.close();
    }
  });

  it.skipIf(!hasMosquitto)("mosquitto", async () => {
    const m = await startMosquitto();
    try {
      expectAgreement(await brokerMatches(m.url));
    } finally {
      await m.close();
    }
  });
});

describe("BrokerClient: a broker that cannot be reached", () => {
  it("a closed port fails at once with the URL and the reason", async () => {
    const probe = createServer();
    const port = await new Promise<number>((resolve) => probe.listen(0, "127.0.0.1", () => resolve((probe.address() as AddressInfo).port)));
    await new Promise((r) => probe.close(r));
    await expect(connectBroker(`mqtt://127.0.0.1:${port}`)).rejects.toThrow(new RegExp(`^cannot reach the MQTT broker at mqtt://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  it("a server that never answers CONNECT fails after the connect timeout", async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
    });
    const port = await new Promise<number>((resolve) => silent.listen(0, "127.0.0.1", () => resolve((silent.address() as AddressInfo).port)));
    try {
      await expect(connectBroker(`mqtt://127.0.0.1:${port}`, { connectTimeout: 300 })).rejects.toThrow(`cannot reach the MQTT broker at mqtt://127.0.0.1:${port}: no CONNACK within 300 ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

describe.skipIf(!hasMosquitto)("BrokerClient on Mosquitto", () => {
  let m: TestMosquitto;
  const clients: { end(): unknown }[] = [];
  beforeAll(async () => {
    m = await startMosquitto();
  });
  afterAll(async () => {
    for (const c of clients) await c.end();
    await m?.close();
  });

  const plain = async (id: string): Promise<MqttClient> => {
    const c = await connectAsync(m.url, { clientId: id, protocolVersion: 4, reconnectPeriod: 0 });
    clients.push({ end: () => c.endAsync() });
    return c;
  };
  const client = async (options: Parameters<typeof connectBroker>[1] = {}): Promise<BrokerClient> => {
    const b = await connectBroker(m.url, options);
    clients.push({ end: () => b.close() });
    return b;
  };
  const subscribe = (b: BrokerClient, filter: string, deliver: (packet: BrokerPacket, done: () => void) => void) =>
    new Promise<void>((resolve) => b.subscribe(filter, deliver, resolve));
  const unsubscribe = (b: BrokerClient, filter: string, deliver: (packet: BrokerPacket, done: () => void) => void) =>
    new Promise<void>((resolve) => b.unsubscribe(filter, deliver, resolve));
  const publish = (b: BrokerClient, topic: string, payload: string, qos: 0 | 1) =>
    new Promise<void>((resolve, reject) => {
      const packet: BrokerPublish = { cmd: "publish", topic, payload: Buffer.from(payload), qos, retain: false, dup: false };
      b.publish(packet, (error) => (error ? reject(error) : resolve()));
    });

  it("delivers each message to every deliver whose filter matches, from the moment `ready` runs", async () => {
    const b = await client();
    const seen: string[] = [];
    const jobs = (p: BrokerPacket, done: () => void) => (seen.push(`jobs ${p.topic} ${p.payload.toString()}`), done());
    const any = (p: BrokerPacket, done: () => void) => (seen.push(`any ${p.topic}`), done());
    const other = (p: BrokerPacket, done: () => void) => (seen.push(`other ${p.topic}`), done());
    await subscribe(b, "$aws/things/+/jobs/+/get", jobs);
    await subscribe(b, "$aws/things/#", any);
    await subscribe(b, "/sys/+/+/ota/device/inform", other);
    const dev = await plain("route-dev");
    await dev.publishAsync("$aws/things/T/jobs/$next/get", "{}", { qos: 1 });
    await dev.publishAsync("$aws/things/T/jobs/start-next", "{}", { qos: 1 });
    await until(() => seen.length >= 3, 5000, "three deliveries");
    expect(seen.sort()).toEqual(["any $aws/things/T/jobs/$next/get", "any $aws/things/T/jobs/start-next", "jobs $aws/things/T/jobs/$next/get {}"]);
    // One of two delivers of a topic gone: the other still gets it.
    await unsubscribe(b, "$aws/things/#", any);
    seen.length = 0;
    await dev.publishAsync("$aws/things/U/jobs/j1/get", "{}", { qos: 1 });
    await dev.publishAsync("/sys/pk/dk/ota/device/inform", "{}", { qos: 1 });
    await until(() => seen.length >= 2, 5000, "two deliveries");
    expect(seen.sort()).toEqual(["jobs $aws/things/U/jobs/j1/get {}", "other /sys/pk/dk/ota/device/inform"]);
  });

  it("publishes with the packet's QoS", async () => {
    const b = await client();
    const dev = await plain("qos-dev");
    const got: [string, number][] = [];
    dev.on("message", (topic, _payload, packet) => got.push([topic, packet.qos]));
    await dev.subscribeAsync("$aws/things/Q/#", { qos: 1 });
    await publish(b, "$aws/things/Q/one", "1", 1);
    await publish(b, "$aws/things/Q/zero", "0", 0);
    await until(() => got.length === 2, 5000, "two messages");
    expect(got).toEqual([
      ["$aws/things/Q/one", 1],
      ["$aws/things/Q/zero", 0],
    ]);
  });

  it("after the broker restarts it reconnects and subscribes again; meanwhile publish fails at once", async () => {
    const own = await startMosquitto();
    try {
      const b = await connectBroker(own.url, { reconnectPeriod: 100 });
      clients.push({ end: () => b.close() });
      const seen: string[] = [];
      await subscribe(b, "$aws/things/+/streams/+/get/cbor", (p, done) => (seen.push(p.topic), done()));
      await own.close();
      await until(() => !b.connected, 5000, "the drop");
      await expect(publish(b, "$aws/things/T/streams/S/data/cbor", "x", 0)).rejects.toThrow(/not connected to the MQTT broker/);
      const again = await startMosquitto({ port: own.port });
      try {
        await until(() => b.connected, 10_000, "the reconnection");
        const dev = await connectAsync(again.url, { clientId: "restart-dev", protocolVersion: 4, reconnectPeriod: 0 });
        try {
          // The new SUBSCRIBE is on its way; ask until it is in place.
          for (let i = 0; i < 100 && seen.length === 0; i++) {
            await dev.publishAsync("$aws/things/T/streams/S/get/cbor", "x", { qos: 1 });
            await new Promise((r) => setTimeout(r, 50));
          }
        } finally {
          await dev.endAsync();
        }
        expect(seen[0]).toBe("$aws/things/T/streams/S/get/cbor");
        await publish(b, "$aws/things/T/streams/S/data/cbor", "x", 1);
      } finally {
        await b.close();
        await again.close();
      }
    } finally {
      await own.close();
    }
  });
});
