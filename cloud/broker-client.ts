/**
 * The local cloud on an external MQTT broker (Mosquitto, EMQX, ...; Node only): a `StreamBroker`
 * (cloud/aws-streams.ts) over one mqtt.js 5 client connection, shared by every service
 * (AwsJobsService, AwsStreamService, EnosService), so they run unchanged on an external broker
 * instead of the embedded aedes.
 *
 * - `connectBroker(url)` resolves after the first CONNACK and rejects with
 *   "cannot reach the MQTT broker at URL: reason" when the first attempt fails (refused,
 *   unknown host, CONNACK refusal) or no CONNACK arrives within `connectTimeout` ms.
 * - One SUBSCRIBE (QoS 1) per distinct filter, however many `deliver`s share it; `ready` runs
 *   after its SUBACK. MQTT does not say which subscription a message came through, so each
 *   incoming message goes to every `deliver` whose filter matches its topic (`topicMatches`,
 *   MQTT's rules). With overlapping filters a broker may send one copy per matching subscription
 *   (MQTT 3.1.1 allows it; Mosquitto 2 sends one), and each copy would reach every match: the
 *   services' filters do not overlap.
 * - A SUBACK refusing a filter (0x80) is kept in `refused` (the broker's ACL said no); `ready`
 *   still runs so nobody waits forever. startCloud turns a refusal into a start-up error.
 *   Not every broker says no: Mosquitto 2.0 answers an MQTT 3.1.1 SUBSCRIBE its ACL denies with
 *   a granted QoS and then delivers nothing (checked with 2.0.11), so there the services start
 *   and simply never hear from devices.
 * - `publish` sends with the packet's QoS and retain false; `done` runs on PUBACK (QoS 1) or once
 *   written (QoS 0). While disconnected it fails at once (nothing is queued for later: the
 *   device asks again, as it would with AWS), and whatever still waits for a PUBACK when the
 *   connection drops fails too.
 * - mqtt.js reconnects every `reconnectPeriod` ms; the session is clean, so after each new
 *   CONNACK every filter still wanted is subscribed again.
 * - `close()` sends DISCONNECT (or gives up on an unreachable broker) and stops reconnecting.
 */
import { randomBytes } from "node:crypto";
import { connect, type IClientOptions, type MqttClient } from "mqtt";
import type { BrokerPacket, BrokerPublish, StreamBroker } from "./aws-streams.ts";

type Deliver = (packet: BrokerPacket, done: () => void) => void;

export interface BrokerClientOptions {
  /** Default `xs-ota-cloud-<random hex>`, so two clouds on one broker do not take over each other's session. */
  clientId?: string;
  /** Milliseconds the first connection may take (TCP + CONNACK); default 10000. */
  connectTimeout?: number;
  /** Milliseconds between reconnection attempts after a drop; default 1000. */
  reconnectPeriod?: number;
  /** Keep-alive in seconds; default 30. */
  keepalive?: number;
}

/**
 * Whether MQTT topic filter `filter` matches topic name `topic` (MQTT 3.1.1 section 4.7, 5.0
 * section 4.7): levels split on "/", `+` matches exactly one level (an empty one too), `#` as the
 * last level matches the parent level and everything below it; a filter starting with a wildcard
 * does not match a topic starting with "$" (e.g. $SYS, $aws), which only explicit filters reach.
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && (filter.startsWith("+") || filter.startsWith("#"))) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === "#") return i === f.length - 1;
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false;
  }
  return f.length === t.length;
}

interface Subscription {
  delivers: Set<Deliver>;
  /** `ready` callbacks waiting for this filter's next SUBACK. */
  waiting: (() => void)[];
  /** Whether the broker holds this filter on the current connection. */
  active: boolean;
}

function reasonOf(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const raw: unknown = (e as NodeJS.ErrnoException).code;
  const code = typeof raw === "string" ? raw : undefined;
  if (e.message === "") return code ?? e.name;
  return code !== undefined && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
}

export class BrokerClient implements StreamBroker {
  /** Filters the broker refused (SUBACK 0x80), in order. */
  readonly refused: string[] = [];
  /** The last transport error mqtt.js reported, for diagnostics. */
  lastError: Error | undefined;
  readonly #client: MqttClient;
  readonly #url: string;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #pending = new Set<(error: Error) => void>();
  #closing: Promise<void> | undefined;

  private constructor(client: MqttClient, url: string) {
    this.#client = client;
    this.#url = url;
    client.on("message", (topic, payload) => this.#route(topic, payload));
    client.on("connect", () => {
      for (const [filter, sub] of this.#subscriptions) {
        sub.active = false;
        this.#sendSubscribe(filter, sub);
      }
    });
    client.on("close", () => {
      for (const sub of this.#subscriptions.values()) sub.active = false;
      this.#failPending(new Error(`the connection to the MQTT broker at ${this.#url} closed`));
    });
    // Without a listener an 'error' event would throw; connection errors end as 'close'.
    client.on("error", (e) => {
      this.lastError = e;
    });
  }

  /** Connects to `url` (mqtt://, mqtts://, ws://, ...) and resolves after the first CONNACK. */
  static async connect(url: string, options: BrokerClientOptions = {}): Promise<BrokerClient> {
    const timeout = options.connectTimeout ?? 10_000;
    const fail = (reason: string) => new Error(`cannot reach the MQTT broker at ${url}: ${reason}`);
    const clientOptions: IClientOptions = {
      clientId: options.clientId ?? `xs-ota-cloud-${randomBytes(6).toString("hex")}`,
      protocolVersion: 4,
      clean: true,
      keepalive: options.keepalive ?? 30,
      reconnectPeriod: options.reconnectPeriod ?? 1000,
      // Reconnection attempts; the first attempt is bounded by the timer below, which fires first.
      connectTimeout: timeout + 500,
      resubscribe: false,
      queueQoSZero: false,
    };
    let client: MqttClient;
    try {
      client = connect(url, clientOptions);
    } catch (e) {
      throw fail(reasonOf(e));
    }
    const broker = new BrokerClient(client, url);
    await new Promise<void>((resolve, reject) => {
      const settle = (error?: Error) => {
        clearTimeout(timer);
        client.off("connect", onConnect);
        client.off("error", onError);
        if (error === undefined) return resolve();
        client.end(true);
        reject(error);
      };
      const onConnect = () => settle();
      const onError = (e: Error) => settle(fail(reasonOf(e)));
      const timer = setTimeout(() => settle(fail(`no CONNACK within ${timeout} ms${broker.lastError ? ` (${reasonOf(broker.lastError)})` : ""}`)), timeout);
      client.on("connect", onConnect);
      client.on("error", onError);
    });
    return broker;
  }

  get url(): string {
    return this.#url;
  }

  get connected(): boolean {
    return this.#client.connected;
  }

  subscribe(filter: string, deliver: Deliver, ready: () => void): void {
    let sub = this.#subscriptions.get(filter);
    if (sub === undefined) {
      sub = { delivers: new Set(), waiting: [], active: false };
      this.#subscriptions.set(filter, sub);
    }
    sub.delivers.add(deliver);
    if (sub.active) return ready();
    sub.waiting.push(ready);
    // Disconnected: the 'connect' handler subscribes and then calls `ready`.
    if (sub.waiting.length === 1 && this.#client.connected) this.#sendSubscribe(filter, sub);
  }

  unsubscribe(filter: string, deliver: Deliver, done: () => void): void {
    const sub = this.#subscriptions.get(filter);
    if (sub === undefined || !sub.delivers.delete(deliver)) return done();
    if (sub.delivers.size > 0) return done();
    this.#subscriptions.delete(filter);
    for (const ready of sub.waiting.splice(0)) ready();
    if (!this.#client.connected) return done();
    this.#client.unsubscribe(filter, () => done());
  }

  publish(packet: BrokerPublish, done: (error?: Error) => void): void {
    if (this.#closing !== undefined || !this.#client.connected) {
      return done(new Error(`publish ${packet.topic}: not connected to the MQTT broker at ${this.#url}`));
    }
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      this.#pending.delete(finish);
      done(error);
    };
    this.#pending.add(finish);
    this.#client.publish(packet.topic, packet.payload, { qos: packet.qos, retain: false }, (error) => finish(error ?? undefined));
  }

  /** Disconnects and stops reconnecting; waits at most a second for a DISCONNECT to go out. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#failPending(new Error(`the client of the MQTT broker at ${this.#url} is closed`));
      for (const sub of this.#subscriptions.values()) for (const ready of sub.waiting.splice(0)) ready();
      this.#subscriptions.clear();
      const force = setTimeout(() => this.#client.end(true, {}, () => resolve()), 1000);
      this.#client.end(!this.#client.connected, {}, () => {
        clearTimeout(force);
        resolve();
      });
    });
    return this.#closing;
  }

  #sendSubscribe(filter: string, sub: Subscription): void {
    this.#client.subscribe(filter, { qos: 1 }, (error, granted) => {
      if (this.#subscriptions.get(filter) !== sub) return;
      if (error) {
        // The connection dropped before the SUBACK: the next CONNACK subscribes again.
        this.lastError = error;
        return;
      }
      if (granted?.some((g) => g.qos === 128)) {
        if (!this.refused.includes(filter)) this.refused.push(filter);
      } else {
        sub.active = true;
      }
      for (const ready of sub.waiting.splice(0)) ready();
    });
  }

  #route(topic: string, payload: Buffer): void {
    const packet: BrokerPacket = { topic, payload };
    for (const [filter, sub] of this.#subscriptions) {
      if (!topicMatches(filter, topic)) continue;
      for (const deliver of sub.delivers) deliver(packet, () => undefined);
    }
  }

  #failPending(error: Error): void {
    const all = [...this.#pending];
    this.#pending.clear();
    for (const finish of all) finish(error);
  }
}

/** `BrokerClient.connect`: the StreamBroker for services on the broker at `url`. */
export function connectBroker(url: string, options?: BrokerClientOptions): Promise<BrokerClient> {
  return BrokerClient.connect(url, options);
}
