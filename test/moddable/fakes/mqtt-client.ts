/**
 * Stand-in for Moddable's ECMA-419 MQTT client ("embedded:network/mqtt/client",
 * examples/io/tcp/mqttclient), as its code behaves: `write` throws before CONNACK; CONNACK,
 * SUBACK (payload: the granted QoS bytes) and PUBACK come to `onControl` as one message object
 * `{operation, id, ...}`; a PUBLISH arrives in `onReadable(count, {topic, byteLength, QoS,
 * more})` fragments of at most one TCP segment, the topic only on the first, each read with
 * `read(count)`. The session itself is the runner's (a real broker); for TLS the socket's
 * `secure` dictionary is checked as Moddable's TLS would need it, and when the runner's broker is
 * an mqtts:// one, the DER in it (CA, client certificates, PKCS#8 key) is handed over
 * ("mqtt.tls") and the runner makes the real TLS session with exactly those: the broker's
 * handshake, not this stand-in, decides whether the device's certificate is good.
 */
import { call, onEvent } from "../../../hosts/sim/xs/bridge.ts";
import Timer from "./timer.ts";
import { TLSSocket, secureParts, type SecureDictionary, type SecureParts } from "./sockets.ts";
import { concatBytes } from "../../../modules/codec/bytes.ts";
import { boardIdentity } from "./identity.ts";

const SEGMENT = 1436;

interface Options {
  host: string;
  port?: number;
  id?: string;
  user?: string;
  password?: string | ArrayBuffer;
  dns: object;
  socket: { io?: unknown; secure?: SecureDictionary };
  onReadable?: (this: MQTTClient, count: number, info: { more: boolean; topic?: string; QoS?: number; byteLength?: number }) => void;
  onWritable?: (this: MQTTClient, count: number) => void;
  onControl?: (this: MQTTClient, message: { operation: number; id: number; payload?: number[]; returnCode?: number }) => void;
  onClose?: (this: MQTTClient) => void;
  onError?: (this: MQTTClient) => void;
}

interface WriteOptions {
  operation?: number;
  id?: number;
  topic?: string;
  QoS?: number;
  items?: { topic: string; QoS?: number }[];
}

export default class MQTTClient {
  static CONNECT = 1;
  static CONNACK = 2;
  static PUBLISH = 3;
  static PUBACK = 4;
  static SUBSCRIBE = 8;
  static SUBACK = 9;
  static PINGREQ = 12;
  static DISCONNECT = 14;

  readonly #o: Options;
  #state: "connecting" | "connected" | "closed" = "connecting";
  #nextId = 1;
  readonly #inbox: { topic: string; bytes: Uint8Array }[] = [];
  #fragment: Uint8Array | undefined;
  #delivering = false;

  constructor(options: Options) {
    if (!options?.host) throw new Error("host required");
    if (typeof options.dns !== "object" || typeof options.socket?.io !== "function") throw new Error("dns and socket providers required");
    this.#o = options;
    let secure: SecureParts | undefined;
    if (options.socket.io === TLSSocket) {
      try {
        secure = secureParts(options.socket.secure);
      } catch (e) {
        trace(`${e instanceof Error ? e.message : String(e)}\n`);
        Timer.set(() => this.#fail());
        return;
      }
    }
    onEvent("mqtt.message", (event, payload) => {
      if (this.#state === "closed") return;
      this.#inbox.push({ topic: event.topic as string, bytes: payload });
      this.#deliver();
    });
    onEvent("mqtt.connection", (event) => {
      if (event.connected === true) this.#connack();
      else this.#fail();
    });
    const identity = boardIdentity();
    if (identity.mqttTls && secure !== undefined) {
      const parts = [...(secure.ca ? [secure.ca] : []), ...secure.certificates, ...(secure.key ? [secure.key] : [])];
      const lengths = { ca: secure.ca?.length ?? 0, certificates: secure.certificates.map((c) => c.length), key: secure.key?.length ?? 0 };
      if (call("mqtt.tls", lengths, concatBytes(parts)).json.connected === true) Timer.set(() => this.#connack());
    } else if (identity.mqttLogin && options.user !== undefined) {
      // A password login (EnOS): the runner makes the session with exactly these CONNECT fields.
      const login = { id: options.id, user: options.user, password: String(options.password ?? "") };
      if (call("mqtt.login", login).json.connected === true) Timer.set(() => this.#connack());
    } else if (identity.connected) Timer.set(() => this.#connack());
  }

  write(data: ArrayBuffer | ArrayBufferView | null, options: WriteOptions): number {
    if (this.#state !== "connected") throw new Error("not connected");
    const id = options.id ?? ++this.#nextId;
    const operation = options.operation ?? MQTTClient.PUBLISH;
    try {
      if (operation === MQTTClient.SUBSCRIBE) {
        const items = options.items ?? [];
        for (const item of items) call("mqtt.subscribe", { topic: item.topic, qos: item.QoS ?? 0 });
        Timer.set(() => this.#control({ operation: MQTTClient.SUBACK, id, payload: items.map((i) => i.QoS ?? 0) }));
      } else if (operation === MQTTClient.PUBLISH) {
        if (typeof options.topic !== "string") throw new Error("topic required");
        const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(0);
        const qos = options.QoS ?? 0;
        call("mqtt.publish", { topic: options.topic, qos }, bytes);
        if (qos) Timer.set(() => this.#control({ operation: MQTTClient.PUBACK, id }));
      } else if (operation !== MQTTClient.PINGREQ && operation !== MQTTClient.DISCONNECT) throw new Error("unknown");
    } catch (e) {
      if (e instanceof Error && (e.message === "unknown" || e.message === "topic required")) throw e;
      Timer.set(() => this.#fail());
    }
    return 4096;
  }

  read(count: number): ArrayBuffer | undefined {
    const fragment = this.#fragment;
    if (!fragment?.length) return undefined;
    const out = fragment.slice(0, count);
    this.#fragment = fragment.subarray(out.length);
    return out.buffer;
  }

  close(): void {
    this.#state = "closed";
    this.#inbox.length = 0;
  }

  #connack(): void {
    if (this.#state !== "connecting") return;
    this.#state = "connected";
    this.#control({ operation: MQTTClient.CONNACK, id: 0, returnCode: 0 });
    if (this.#state === "connected") this.#o.onWritable?.call(this, 4096);
  }

  #control(message: { operation: number; id: number; payload?: number[]; returnCode?: number }): void {
    if (this.#state === "connected") this.#o.onControl?.call(this, message);
  }

  /** Hands each waiting message over in segment-sized fragments. */
  #deliver(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      while (this.#state === "connected" && this.#inbox.length) {
        const { topic, bytes } = this.#inbox.shift()!;
        for (let at = 0; at === 0 || at < bytes.length; at += SEGMENT) {
          const piece = bytes.subarray(at, at + SEGMENT);
          this.#fragment = piece;
          const more = at + SEGMENT < bytes.length;
          this.#o.onReadable?.call(this, piece.length, at === 0 ? { topic, QoS: 1, byteLength: bytes.length, more } : { more });
          if (this.#fragment?.length) throw new Error("onReadable left bytes unread");
          if (!bytes.length) break;
        }
      }
    } finally {
      this.#delivering = false;
    }
  }

  #fail(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#o.onError?.call(this);
  }
}

declare const trace: (text: string) => void;
