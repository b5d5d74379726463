/**
 * An in-memory MQTT broker with an AWS stream service behind it, for the stream client's suite on
 * any engine. Messages are delivered as jobs, one at a time, as a broker would. Hooks make the
 * service hostile. (The Node tests also run the client against aedes and cloud/aws-streams.ts,
 * which decodes with an independent CBOR library.) Portable.
 */
import type { Mqtt, QoS } from "../../modules/ports/mqtt.ts";
import { OtaError } from "../../modules/errors.ts";
import { decodeCbor, encodeCbor, type CborMap, type CborValue } from "../../modules/codec/cbor.ts";

export interface RecordedRequest {
  o: number;
  n: number;
  l: number;
  bitmap: Uint8Array;
}

export interface ServiceHooks {
  /** Return false to ignore a request (silence). */
  answer?(request: RecordedRequest, index: number): boolean;
  /** Alter or replace each data message; return undefined to drop it. */
  block?(message: CborMap): CborValue | Uint8Array | undefined;
  /** Send every block this many times. */
  copies?: number;
  /** Deliver each answer's blocks in reverse order. */
  reverse?: boolean;
  /** True to reject the publish of request `index` as a disconnected session does ("network"). */
  offline?(index: number): boolean;
  /** Refuse with this AWS error code (echoing the request's token, or the one given). */
  reject?: { code: string; message: string; token?: string };
}

export class FakeStreamBroker implements Mqtt {
  readonly requests: RecordedRequest[] = [];
  readonly subscriptions: string[] = [];
  #handler: ((topic: string, payload: Uint8Array) => void) | undefined;

  constructor(
    readonly file: Uint8Array,
    readonly fileId: number,
    public hooks: ServiceHooks = {},
  ) {}

  async subscribe(topic: string, _qos: QoS): Promise<void> {
    this.subscriptions.push(topic);
  }

  async publish(topic: string, payload: Uint8Array | string, _qos: QoS): Promise<void> {
    const m = /^\$aws\/things\/([^/]+)\/streams\/([^/]+)\/get\/cbor$/.exec(topic);
    if (!m || typeof payload === "string") return;
    const base = `$aws/things/${m[1]}/streams/${m[2]}`;
    const request = decodeCbor(payload) as CborMap;
    const recorded: RecordedRequest = { o: request["o"] as number, n: request["n"] as number, l: request["l"] as number, bitmap: (request["b"] as Uint8Array).slice() };
    this.requests.push(recorded);
    if (this.hooks.offline?.(this.requests.length - 1)) throw new OtaError("network", `publish ${topic}: not connected`);
    if (this.hooks.answer && !this.hooks.answer(recorded, this.requests.length - 1)) return;
    if (this.hooks.reject) {
      this.#deliver(`${base}/rejected/cbor`, encodeCbor({ o: this.hooks.reject.code, m: this.hooks.reject.message, c: this.hooks.reject.token ?? (request["c"] as string) }));
      return;
    }
    const blocks: number[] = [];
    for (let k = 0; blocks.length < recorded.n && k < recorded.bitmap.length * 8; k++) {
      const i = recorded.o + k;
      if (i * recorded.l >= this.file.length) break;
      if (recorded.bitmap[k >> 3] & (1 << (k & 7))) blocks.push(i);
    }
    if (this.hooks.reverse) blocks.reverse();
    for (const i of blocks) {
      const p = this.file.subarray(i * recorded.l, Math.min(this.file.length, (i + 1) * recorded.l));
      let message: CborValue | Uint8Array | undefined = { f: this.fileId, l: recorded.l, i, p };
      if (this.hooks.block) message = this.hooks.block(message as CborMap);
      if (message === undefined) continue;
      const bytes = message instanceof Uint8Array ? message : encodeCbor(message);
      for (let c = 0; c < (this.hooks.copies ?? 1); c++) this.#deliver(`${base}/data/cbor`, bytes);
    }
  }

  onMessage(handler: (topic: string, payload: Uint8Array) => void): void {
    this.#handler = handler;
  }

  onConnectionChange(): void {}

  #deliver(topic: string, payload: Uint8Array): void {
    Promise.resolve().then(() => this.#handler?.(topic, payload));
  }
}
