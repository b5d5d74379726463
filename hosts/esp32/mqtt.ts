/**
 * The Mqtt port over Moddable's ECMA-419 MQTT client (`embedded:network/mqtt/client`,
 * examples/io/tcp/mqttclient in the Moddable SDK), with mutual TLS for AWS IoT through the
 * provider's TLS socket (`secure`: CA, device certificate, PKCS#8 key; see tls.ts).
 *
 * The client is a thin codec: it writes a packet only while the socket has room and throws
 * otherwise, accepts writes only once CONNACK came, reports SUBACK/PUBACK through `onControl`
 * and delivers a PUBLISH in `onReadable` fragments (topic on the first). So this class keeps an
 * outgoing queue flushed from `onWritable`, numbers packets itself to match acknowledgements,
 * reassembles messages, and reconnects with backoff after an error (clean session: the agent
 * subscribes again on the "connected" it is told about). A packet goes out whole, so it must fit
 * the socket's send buffer (8 KB in Moddable's lwIP settings); the agent's are well under 1 KB.
 */
import type MQTTClient from "embedded:network/mqtt/client";
import type { Mqtt, QoS } from "xs-ota/ports/mqtt";
import type { Clock } from "xs-ota/ports/clock";
import { OtaError } from "xs-ota/errors";
import { utf8Encode, utf8Length } from "xs-ota/codec/utf8";
import { secureOptions, type TlsPem } from "./tls.ts";
import { copyBuffer } from "./buffers.ts";
import { concatBytes } from "xs-ota/codec/bytes";

export interface MqttProvider {
  io: typeof MQTTClient;
  dns: object;
  socket: object;
}

export interface Esp32MqttOptions {
  provider: MqttProvider;
  host: string;
  /** Default 8883 with TLS, 1883 without. */
  port?: number;
  /** Client id: AWS IoT wants the thing name. */
  id: string;
  /** A password login made for each connection (EnOS): its client id replaces `id`. */
  login?: () => { clientId: string; username: string; password: string };
  /** TLS credentials (PEM); absent: plain TCP. */
  tls?: TlsPem;
  /** Milliseconds between pings when idle (default 60 s). */
  keepalive?: number;
  clock: Clock;
  log?: (message: string) => void;
}

/** Moddable's MQTT client takes the login as `id`, `user` and `password`. */
function loginFields(l: { clientId: string; username: string; password: string }): { id: string; user: string; password: string } {
  return { id: l.clientId, user: l.username, password: l.password };
}

// Operation codes of the MQTT control packets (the client's static fields have the same values).
const SUBSCRIBE = 8;
const PUBLISH = 3;
const CONNACK = 2;
const PUBACK = 4;
const SUBACK = 9;
const RETRY_MIN = 1000;
const RETRY_MAX = 60_000;

interface ControlMessage {
  operation: number;
  id?: number;
  returnCode?: number;
  payload?: unknown;
}

interface Outgoing {
  data: ArrayBuffer;
  options: { operation: number; id: number; topic: string; QoS?: number; items?: { topic: string; QoS: number }[] };
}

type Pending = { resolve: () => void; reject: (e: Error) => void };

export class Esp32Mqtt implements Mqtt {
  readonly #o: Esp32MqttOptions;
  readonly #messages: ((topic: string, payload: Uint8Array) => void)[] = [];
  readonly #changes: ((connected: boolean) => void)[] = [];
  readonly #queue: Outgoing[] = [];
  /** Packets waiting for their SUBACK/PUBACK, by packet id. */
  readonly #pending = new Map<number, Pending>();
  /** QoS 0 publishes, done once the client has written them. */
  readonly #written = new Map<number, Pending>();
  #client: MQTTClient | undefined;
  #connected = false;
  /** Bumped per connection attempt, so callbacks of an abandoned client are ignored. */
  #generation = 0;
  #nextId = 1;
  #retry = RETRY_MIN;
  #incoming: { topic: string; parts: Uint8Array[] } | undefined;

  constructor(options: Esp32MqttOptions) {
    this.#o = options;
    this.#connect();
  }

  get connected(): boolean {
    return this.#connected;
  }

  subscribe(topic: string, qos: QoS): Promise<void> {
    checkTopic(topic, true);
    return this.#send(SUBSCRIBE, new ArrayBuffer(0), topic, qos);
  }

  publish(topic: string, payload: Uint8Array | string, qos: QoS): Promise<void> {
    checkTopic(topic, false);
    // A copy: the caller may reuse its buffer before the packet leaves the queue.
    return this.#send(PUBLISH, copyBuffer(typeof payload === "string" ? utf8Encode(payload) : payload), topic, qos);
  }

  onMessage(handler: (topic: string, payload: Uint8Array) => void): void {
    this.#messages.push(handler);
  }

  onConnectionChange(handler: (connected: boolean) => void): void {
    this.#changes.push(handler);
  }

  #send(operation: number, data: ArrayBuffer, topic: string, qos: QoS): Promise<void> {
    if (!this.#connected) return Promise.reject(new OtaError("network", "MQTT is not connected"));
    const id = this.#nextId;
    this.#nextId = (this.#nextId % 0xffff) + 1;
    const options: Outgoing["options"] =
      operation === SUBSCRIBE ? { operation, id, topic, items: [{ topic, QoS: qos }] } : { operation, id, topic, QoS: qos };
    const acknowledged = operation === SUBSCRIBE || qos === 1;
    const done = new Promise<void>((resolve, reject) => (acknowledged ? this.#pending : this.#written).set(id, { resolve, reject }));
    this.#queue.push({ data, options });
    this.#flush();
    return done;
  }

  /** Writes queued packets while the socket takes them; the rest wait for `onWritable`. */
  #flush(): void {
    const client = this.#client;
    while (client && this.#connected && this.#queue.length) {
      const next = this.#queue[0];
      let refused: unknown;
      try {
        client.write(next.data, next.options);
      } catch (e) {
        // "overflow": no room in the socket yet; onWritable comes when there is.
        if (e instanceof Error && e.message === "overflow") return;
        refused = e;
      }
      this.#queue.shift();
      const id = next.options.id;
      const acknowledged = this.#pending.get(id);
      const written = this.#written.get(id);
      this.#written.delete(id);
      if (refused !== undefined) {
        this.#pending.delete(id);
        const error = new OtaError("network", `MQTT refused the packet: ${refused instanceof Error ? refused.message : String(refused)}`);
        (acknowledged ?? written)?.reject(error);
      } else written?.resolve();
    }
  }

  #connect(): void {
    const o = this.#o;
    const generation = ++this.#generation;
    const live = () => generation === this.#generation;
    let socket: object;
    try {
      socket = o.tls ? { ...o.provider.socket, secure: secureOptions(o.tls) } : o.provider.socket;
    } catch (e) {
      // Credentials the TLS stack cannot use: said in the log at every retry, the device runs on.
      return this.#lost(e instanceof Error ? e.message : String(e));
    }
    const options = {
      ...o.provider,
      socket,
      host: o.host,
      port: o.port ?? (o.tls ? 8883 : 1883),
      ...(o.login ? loginFields(o.login()) : { id: o.id }),
      clean: true,
      keepalive: o.keepalive ?? 60_000,
      // The typings pass (operation, message); Moddable's client passes one message object.
      onControl: (first: number | ControlMessage, second?: ControlMessage) => {
        if (live()) this.#control(typeof first === "object" ? first : (second ?? { operation: first }));
      },
      onReadable: (count: number, info: { more: boolean; topic?: string }) => {
        if (live()) this.#readable(count, info);
      },
      onWritable: () => {
        if (live()) this.#flush();
      },
      onError: () => {
        if (live()) this.#lost("connection error");
      },
      onClose: () => {
        if (live()) this.#lost("connection closed");
      },
    };
    try {
      this.#client = new o.provider.io(options);
    } catch (e) {
      this.#lost(e instanceof Error ? e.message : String(e));
    }
  }

  #control(message: ControlMessage): void {
    if (message.operation === CONNACK) {
      this.#connected = true;
      this.#retry = RETRY_MIN;
      this.#flush();
      for (const h of this.#changes) h(true);
      return;
    }
    if (message.operation !== PUBACK && message.operation !== SUBACK) return;
    const id = message.id ?? -1;
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    if (!pending) return;
    const granted = message.operation === SUBACK ? firstByte(message.payload) : 0;
    if (granted === 0x80) pending.reject(new OtaError("network", "the broker refused the subscription"));
    else pending.resolve();
  }

  #readable(count: number, info: { more: boolean; topic?: string }): void {
    const client = this.#client;
    if (!client) return;
    if (info.topic !== undefined) this.#incoming = { topic: info.topic, parts: [] };
    const chunk = client.read(count);
    if (chunk && this.#incoming) this.#incoming.parts.push(new Uint8Array(chunk));
    if (info.more || !this.#incoming) return;
    const { topic, parts } = this.#incoming;
    this.#incoming = undefined;
    const payload = concatBytes(parts);
    for (const h of this.#messages) h(topic, payload);
  }

  #lost(why: string): void {
    this.#generation++;
    const client = this.#client;
    this.#client = undefined;
    client?.close();
    const wasConnected = this.#connected;
    this.#connected = false;
    this.#incoming = undefined;
    this.#queue.length = 0;
    const failed = [...this.#pending.values(), ...this.#written.values()];
    this.#pending.clear();
    this.#written.clear();
    for (const p of failed) p.reject(new OtaError("network", `MQTT ${why}`));
    this.#o.log?.(`MQTT ${why}; retrying in ${this.#retry} ms`);
    if (wasConnected) for (const h of this.#changes) h(false);
    const delay = this.#retry;
    this.#retry = Math.min(this.#retry * 2, RETRY_MAX);
    this.#o.clock.setTimer(delay, () => this.#connect());
  }
}

/** MQTT 3.1.1 4.7: no empty topics, no NUL, at most 65535 bytes; wildcards only in filters, whole levels. */
function checkTopic(topic: string, filter: boolean): void {
  const bad = (why: string) => new OtaError("bad-argument", `MQTT topic '${topic.slice(0, 100)}': ${why}`);
  if (typeof topic !== "string" || topic.length === 0) throw bad("empty");
  if (topic.includes("\u0000")) throw bad("contains NUL");
  if (utf8Length(topic) > 0xffff) throw bad("longer than 65535 bytes");
  const levels = topic.split("/");
  levels.forEach((level, i) => {
    if (!filter && (level.includes("+") || level.includes("#"))) throw bad("wildcards are for subscriptions only");
    if (level.includes("+") && level !== "+") throw bad("'+' must be a whole level");
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) throw bad("'#' must be the whole last level");
  });
}

function firstByte(payload: unknown): number {
  if (Array.isArray(payload) && typeof payload[0] === "number") return payload[0];
  if (payload instanceof ArrayBuffer && payload.byteLength) return new Uint8Array(payload)[0];
  if (ArrayBuffer.isView(payload) && payload.byteLength) return new Uint8Array(payload.buffer, payload.byteOffset, 1)[0];
  return 0;
}
