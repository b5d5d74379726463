/**
 * The Mqtt port on the desktop: one MQTT 3.1.1 session (protocol level 4, AWS IoT's dialect)
 * over mqtt.js 5.
 *
 * Contract details this host settles (see modules/ports/mqtt.ts for the port itself):
 * - `subscribe` resolves on SUBACK, `publish` on PUBACK for QoS 1 and once the packet is written
 *   to the socket for QoS 0. A SUBACK that refuses the filter (return code 0x80) rejects with
 *   OtaError "network": the broker said no, the topic itself was well-formed.
 * - While disconnected (after a drop, or after `close`; `connect` resolves only after the first
 *   CONNACK) both reject at once with OtaError "network"; nothing is queued behind the caller's
 *   back (mqtt.js would otherwise queue QoS 0 and store QoS 1 for after a reconnect).
 *   An operation still waiting for its SUBACK / PUBACK when the connection drops rejects with
 *   "network" too. A QoS 1 PUBLISH that was on the wire may still be retransmitted by mqtt.js
 *   after a reconnect (QoS 1 is at-least-once); receivers must tolerate duplicates anyway.
 * - Topics MQTT forbids reject with OtaError "bad-argument" before anything is sent: empty,
 *   longer than 65535 UTF-8 bytes, U+0000 or an unpaired surrogate, and for PUBLISH any `+` or
 *   `#`; for SUBSCRIBE a `#` that is not a whole last level or a `+` that is not a whole level.
 *   (AWS IoT adds its own limits, e.g. 256 bytes and 7 slashes after `$aws/...`; a host must not
 *   pretend to enforce them, the broker will.)
 * - `publish` copies the payload: the caller may reuse its buffer as soon as publish returns.
 * - `onMessage` handlers receive the topic and a fresh copy of the payload as a plain
 *   Uint8Array (not a Buffer, and not a view into mqtt.js's parse buffer), in arrival order.
 *   Arrival order is the broker's: MQTT orders messages of one publisher per QoS level only
 *   (aedes forwards QoS 0 ahead of QoS 1 published just before them, as it stores QoS 1 first),
 *   and AWS IoT does not promise order at all. mqtt.js itself writes PUBLISH packets in the
 *   order `publish` was called.
 *   Handlers run synchronously inside mqtt.js's parser; one that throws is a programming error
 *   and is rethrown from a microtask, so the session itself keeps working.
 * - `onConnectionChange(true|false)` reports transitions only: true on every CONNACK after being
 *   down, false on every drop after being up (failed reconnect attempts are not repeated
 *   falses). `close()` reports a final false.
 *
 * Reconnection and subscriptions. mqtt.js reconnects by itself every `reconnectPeriod` ms
 * (default 1000 here, 0 disables). Its own `resubscribe` option (default true) would SUBSCRIBE
 * again after a reconnect whenever clean is true or the broker reports no session; this host
 * turns it off so nothing is subscribed without the agent asking. What then happens:
 * - clean: false and CONNACK sessionPresent = 1: the broker kept the session, subscriptions
 *   included; messages flow again without any SUBSCRIBE (and QoS 1 messages queued while away
 *   are delivered). `sessionPresent` tells which case this was.
 * - clean: true, or sessionPresent = 0 (the broker lost or discarded the session): no
 *   subscription exists any more; the agent subscribes again on onConnectionChange(true).
 * Subscribing again when the session was kept is harmless: MQTT replaces the subscription.
 */
import { connect, type IClientOptions, type MqttClient } from "mqtt";
import { OtaError } from "../../modules/errors.ts";
import type { Mqtt, QoS } from "../../modules/ports/mqtt.ts";

export interface NodeMqttOptions {
  clientId: string;
  /**
   * A password login made afresh for every connection (EnOS signs the time into it): its client
   * id, user name and password replace `clientId` on the first CONNECT and on every reconnect.
   */
  login?: () => { clientId: string; username: string; password: string };
  /** MQTT clean session; default true. */
  clean?: boolean;
  /** PEM CA certificate(s) for mqtts:// URLs. */
  ca?: string;
  /** PEM client certificate and key for mutual TLS (AWS IoT on port 8883). */
  cert?: string;
  key?: string;
  /** Keep-alive in seconds; default 60. */
  keepalive?: number;
  /** Milliseconds between reconnection attempts; 0 disables reconnection. Default 1000. */
  reconnectPeriod?: number;
  /** Milliseconds to wait for CONNACK; default 30000. */
  connectTimeout?: number;
}

const MAX_TOPIC_BYTES = 65535;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkTopicText(topic: string, what: string): void {
  if (typeof topic !== "string" || topic.length === 0) throw new OtaError("bad-argument", `${what}: empty topic`);
  if (topic.includes("\u0000")) throw new OtaError("bad-argument", `${what}: topic contains U+0000`);
  if (LONE_SURROGATE.test(topic)) throw new OtaError("bad-argument", `${what}: topic is not well-formed UTF-16 (unpaired surrogate)`);
  const bytes = Buffer.byteLength(topic, "utf8");
  if (bytes > MAX_TOPIC_BYTES) throw new OtaError("bad-argument", `${what}: topic is ${bytes} UTF-8 bytes, MQTT allows ${MAX_TOPIC_BYTES}`);
}

/** Throws OtaError "bad-argument" for a topic name MQTT 3.1.1 does not allow in PUBLISH. */
export function checkPublishTopic(topic: string): void {
  checkTopicText(topic, "publish");
  if (topic.includes("+") || topic.includes("#")) {
    throw new OtaError("bad-argument", `publish: wildcard in topic name ${JSON.stringify(topic)}`);
  }
}

/** Throws OtaError "bad-argument" for a topic filter MQTT 3.1.1 does not allow in SUBSCRIBE. */
export function checkTopicFilter(filter: string): void {
  checkTopicText(filter, "subscribe");
  const levels = filter.split("/");
  levels.forEach((level, i) => {
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) {
      throw new OtaError("bad-argument", `subscribe: '#' must be a whole last level in ${JSON.stringify(filter)}`);
    }
    if (level.includes("+") && level !== "+") {
      throw new OtaError("bad-argument", `subscribe: '+' must be a whole level in ${JSON.stringify(filter)}`);
    }
  });
}

function checkQos(qos: QoS): void {
  if (qos !== 0 && qos !== 1) throw new OtaError("bad-argument", `QoS ${String(qos)}: only 0 and 1 (AWS IoT has no QoS 2)`);
}

function networkError(message: string, cause?: unknown): OtaError {
  const detail = cause instanceof Error ? `: ${cause.message}` : "";
  return new OtaError("network", `${message}${detail}`);
}

/** A promise waiting for an acknowledgement, rejected if the connection drops first. */
interface Pending {
  reject(error: OtaError): void;
}

export class NodeMqtt implements Mqtt {
  readonly #client: MqttClient;
  readonly #messageHandlers: ((topic: string, payload: Uint8Array) => void)[] = [];
  readonly #connectionHandlers: ((connected: boolean) => void)[] = [];
  readonly #pending = new Set<Pending>();
  #up = false;
  #closed = false;
  #sessionPresent = false;
  #lastError: Error | undefined;

  private constructor(client: MqttClient) {
    this.#client = client;
    client.on("message", (topic, payload) => {
      // A copy: mqtt.js hands out Buffers that may share memory with its parser.
      const bytes = new Uint8Array(payload);
      for (const handler of this.#messageHandlers) {
        try {
          handler(topic, bytes);
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    });
    client.on("connect", (connack) => {
      this.#sessionPresent = connack.sessionPresent === true;
      this.#transition(true);
    });
    client.on("close", () => {
      this.#failPending("connection closed");
      this.#transition(false);
    });
    // Without a listener, an 'error' event would throw; connection errors end as 'close'.
    client.on("error", (e) => {
      this.#lastError = e;
    });
  }

  /**
   * Connects and resolves once the broker accepted (CONNACK 0); rejects with OtaError "network"
   * when the first attempt fails (refused, unreachable, TLS, CONNACK refusal, timeout).
   */
  static async connect(url: string, options: NodeMqttOptions): Promise<NodeMqtt> {
    if (typeof options.clientId !== "string" || options.clientId.length === 0) {
      throw new OtaError("bad-argument", "clientId must be a non-empty string");
    }
    const clientOptions: IClientOptions = {
      clientId: options.clientId,
      protocolVersion: 4,
      clean: options.clean ?? true,
      keepalive: options.keepalive ?? 60,
      reconnectPeriod: options.reconnectPeriod ?? 1000,
      connectTimeout: options.connectTimeout ?? 30_000,
      resubscribe: false,
      queueQoSZero: false,
    };
    if (options.ca !== undefined) clientOptions.ca = options.ca;
    if (options.cert !== undefined) clientOptions.cert = options.cert;
    if (options.key !== undefined) clientOptions.key = options.key;
    const login = options.login;
    const signIn = (o: IClientOptions) => {
      if (!login) return;
      const l = login();
      o.clientId = l.clientId;
      o.username = l.username;
      o.password = l.password;
    };
    signIn(clientOptions);
    let client: MqttClient;
    try {
      client = connect(url, clientOptions);
    } catch (e) {
      throw networkError(`cannot connect to ${url}`, e);
    }
    // mqtt.js reconnects with client.options: a fresh login goes there before each attempt.
    if (login) client.on("close", () => signIn(client.options));
    // Listeners go on before the first CONNACK can arrive; the first attempt must succeed.
    const session = new NodeMqtt(client);
    await new Promise<void>((resolve, reject) => {
      const settle = (error?: OtaError) => {
        client.off("connect", onConnect);
        client.off("error", onError);
        client.off("close", onClose);
        if (error === undefined) return resolve();
        client.end(true);
        reject(error);
      };
      const onConnect = () => settle();
      const onError = (e: Error) => settle(networkError(`cannot connect to ${url}`, e));
      const onClose = () => settle(new OtaError("network", `cannot connect to ${url}: connection closed before CONNACK`));
      client.on("connect", onConnect);
      client.on("error", onError);
      client.on("close", onClose);
    });
    return session;
  }

  /** Whether the last CONNACK said the broker kept the session (clean: false only). */
  get sessionPresent(): boolean {
    return this.#sessionPresent;
  }

  get connected(): boolean {
    return this.#up && !this.#closed;
  }

  /** The last transport error mqtt.js reported, for diagnostics. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  subscribe(topic: string, qos: QoS): Promise<void> {
    try {
      checkQos(qos);
      checkTopicFilter(topic);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#whileConnected(`subscribe ${topic}`, (done) => {
      this.#client.subscribe(topic, { qos }, (error, granted) => {
        if (error) return done(networkError(`subscribe ${topic} failed`, error));
        const refused = granted?.find((g) => g.qos === 128);
        if (refused !== undefined) return done(new OtaError("network", `broker refused subscription to ${topic} (SUBACK 0x80)`));
        done();
      });
    });
  }

  publish(topic: string, payload: Uint8Array | string, qos: QoS): Promise<void> {
    let body: Buffer;
    try {
      checkQos(qos);
      checkPublishTopic(topic);
      if (typeof payload === "string") body = Buffer.from(payload, "utf8");
      // A copy: mqtt.js keeps the payload for retransmission and the socket may write it later.
      else if (payload instanceof Uint8Array) body = Buffer.from(payload);
      else throw new OtaError("bad-argument", "payload must be a Uint8Array or a string");
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#whileConnected(`publish ${topic}`, (done) => {
      this.#client.publish(topic, body, { qos, retain: false }, (error) => {
        if (error) return done(networkError(`publish ${topic} failed`, error));
        done();
      });
    });
  }

  onMessage(handler: (topic: string, payload: Uint8Array) => void): void {
    this.#messageHandlers.push(handler);
  }

  onConnectionChange(handler: (connected: boolean) => void): void {
    this.#connectionHandlers.push(handler);
  }

  /** Sends DISCONNECT when possible, stops reconnecting, rejects whatever still waits. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const force = !this.#client.connected || this.#pending.size > 0;
    this.#failPending("session closed");
    await new Promise<void>((resolve) => {
      this.#client.end(force, {}, () => resolve());
    });
    this.#transition(false);
  }

  #whileConnected(what: string, start: (done: (error?: OtaError) => void) => void): Promise<void> {
    if (this.#closed) return Promise.reject(new OtaError("network", `${what}: session closed`));
    if (!this.#up || !this.#client.connected) return Promise.reject(new OtaError("network", `${what}: not connected`));
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = { reject };
      this.#pending.add(pending);
      start((error) => {
        if (!this.#pending.delete(pending)) return; // already failed by a drop
        if (error) reject(error);
        else resolve();
      });
    });
  }

  #failPending(why: string): void {
    const all = [...this.#pending];
    this.#pending.clear();
    for (const p of all) p.reject(new OtaError("network", `no acknowledgement: ${why}`));
  }

  #transition(up: boolean): void {
    if (this.#closed && up) return;
    if (up === this.#up) return;
    this.#up = up;
    for (const handler of this.#connectionHandlers) handler(up);
  }
}
