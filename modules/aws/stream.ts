/**
 * AWS IoT MQTT file streams (CBOR): the device asks `$aws/things/T/streams/S/get/cbor` for
 * blocks with {c, f, l, o, n, b} and receives them on `.../data/cbor` as {f, l, i, p}; refusals
 * come on `.../rejected/cbor` as {o: code, m: message, c}. Here:
 *
 * - several requests are in flight at once (`window`), each for at most 128 KB (the service's
 *   per-request limit), so throughput is not one round trip per block;
 * - each block goes straight to its place in flash (BlockWriter), and the digests are fed in file
 *   order (blocks that arrive early are read back when their turn comes), so memory stays one
 *   block whatever the order;
 * - the bitmap of blocks still needed and the erase mark are handed to `persist`, so a reboot
 *   resumes with what flash already holds;
 * - a block with another file id, an index outside the file, a wrong length or undecodable CBOR
 *   is refused and counted, never written (late blocks of an earlier download on the same stream
 *   look like that too); a block already received is ignored; a request that goes quiet is asked
 *   again (so is one that could not be sent while disconnected), and too many in a row without
 *   progress end the transfer: "stream-protocol" with the
 *   last refusal's reason when bad messages were all that came, else "no-progress";
 * - a service that trickles (a block just before every timeout) meets the rate floor
 *   (modules/transfer/rate.ts): "too-slow".
 */
import type { Clock, TimerId } from "../ports/clock.ts";
import type { Mqtt, QoS } from "../ports/mqtt.ts";
import { OtaError, isOtaError } from "../errors.ts";
import { decodeCbor, encodeCbor, type CborMap } from "../codec/cbor.ts";
import { blockCount, fullBitmap, type BlockTransfer, type BlockTransferOptions } from "../transfer/blocks.ts";
import { RateFloor } from "../transfer/rate.ts";

export const MIN_BLOCK = 256;
export const MAX_BLOCK = 128 * 1024;
/** The service sends at most this much per GetStream request. */
export const MAX_REQUEST_BYTES = 128 * 1024;

/** What a stream takes beyond the generic block-transfer options: where the file is. */
export interface StreamOptions extends BlockTransferOptions {
  mqtt: Mqtt;
  clock: Clock;
  thing: string;
  stream: string;
  fileId: number;
  /** Client token sent with requests (AWS echoes it in refusals); unique per download by default. */
  clientToken?: string;
  qos?: QoS;
}

export interface StreamResult {
  blocks: number;
  requests: number;
  duplicates: number;
  retries: number;
  /** Messages refused (wrong file, index, length, undecodable). */
  refused: number;
  /** Blocks that came before the header's block passed, left needed. */
  early: number;
}

interface InFlight {
  first: number;
  count: number;
  timer: TimerId;
}

export class StreamDownload implements BlockTransfer {
  readonly #o: StreamOptions;
  readonly #blockSize: number;
  readonly #blocks: number;
  readonly #perRequest: number;
  readonly #needed: Uint8Array;
  readonly #topics: { get: string; data: string; rejected: string };
  readonly #inFlight: InFlight[] = [];
  readonly #result: StreamResult = { blocks: 0, requests: 0, duplicates: 0, retries: 0, refused: 0, early: 0 };
  readonly #token: string;
  /** Why the last message was refused, while no good block has come since. */
  #problem: string | undefined;
  #remaining: number;
  #hashedBlocks = 0;
  /** Blocks below this are received or in a request in flight. */
  #cursor = 0;
  #quiet = 0;
  /** Bytes of good new blocks in this session, for the rate floor. */
  #bytes = 0;
  readonly #floor: RateFloor;
  #settle!: { resolve: (r: StreamResult) => void; reject: (e: unknown) => void };
  readonly #finished: Promise<StreamResult>;
  #done = false;

  constructor(o: StreamOptions) {
    const blockSize = o.blockSize ?? 4096;
    if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK || blockSize > MAX_BLOCK) {
      throw new OtaError("bad-argument", `block size ${blockSize} is outside ${MIN_BLOCK}..${MAX_BLOCK}`);
    }
    if (!Number.isSafeInteger(o.size) || o.size <= 0) throw new OtaError("bad-argument", `file size must be positive, got ${o.size}`);
    if (!Number.isSafeInteger(o.fileId) || o.fileId < 0) throw new OtaError("bad-argument", `file id must be a non-negative integer`);
    this.#o = o;
    this.#blockSize = blockSize;
    this.#blocks = blockCount(o.size, blockSize);
    this.#perRequest = Math.max(1, Math.min(o.blocksPerRequest ?? 32, Math.floor(MAX_REQUEST_BYTES / blockSize)));
    const fresh = fullBitmap(this.#blocks);
    if (o.resume && (o.resume.bitmap.length !== fresh.length || o.resume.bitmap.some((b, i) => (b & ~fresh[i]) !== 0))) {
      throw new OtaError("bad-argument", "resume bitmap does not fit this file and block size");
    }
    this.#needed = o.resume ? o.resume.bitmap.slice() : fresh;
    this.#floor = new RateFloor(o.clock, o.rate);
    this.#token = o.clientToken ?? `xs-ota-${Math.floor(Math.random() * 0x7fffffff).toString(36)}`;
    this.#remaining = 0;
    for (let i = 0; i < this.#blocks; i++) if (this.#isNeeded(i)) this.#remaining++;
    const base = `$aws/things/${o.thing}/streams/${o.stream}`;
    this.#topics = { get: `${base}/get/cbor`, data: `${base}/data/cbor`, rejected: `${base}/rejected/cbor` };
    // Settled by whichever comes first, even a cancel() before start() got going.
    this.#finished = new Promise<StreamResult>((resolve, reject) => (this.#settle = { resolve, reject }));
    this.#finished.catch(() => undefined);
  }

  /** Subscribes, then requests until every block is in flash and hashed. */
  async start(): Promise<StreamResult> {
    const qos = this.#o.qos ?? 0;
    try {
      await this.#o.mqtt.subscribe(this.#topics.data, qos);
      await this.#o.mqtt.subscribe(this.#topics.rejected, qos);
      if (!this.#done) {
        this.#advanceHash();
        this.#fill();
      }
    } catch (e) {
      this.#fail(e);
    }
    return this.#finished;
  }

  /** Hands over a message; true when it was this stream's. */
  handle(topic: string, payload: Uint8Array): boolean {
    if (topic !== this.#topics.data && topic !== this.#topics.rejected) return false;
    if (this.#done) return true;
    try {
      if (this.#o.cancelled?.()) throw new OtaError("cancelled", "stream download abandoned");
      if (topic === this.#topics.rejected) this.#rejected(payload);
      else this.#block(payload);
    } catch (e) {
      this.#fail(e);
    }
    return true;
  }

  /** Stops: timers cleared, late messages ignored. */
  cancel(): void {
    this.#fail(new OtaError("cancelled", "stream download abandoned"));
  }

  #isNeeded(i: number): boolean {
    return (this.#needed[i >> 3] & (1 << (i & 7))) !== 0;
  }

  /** The block a data message carries, or why it is refused. */
  #check(payload: Uint8Array): { i: number; p: Uint8Array } | string {
    let msg: CborMap;
    try {
      msg = decode(payload);
    } catch (e) {
      return (e as Error).message;
    }
    const f = msg["f"], i = msg["i"], l = msg["l"], p = msg["p"];
    if (typeof f !== "number" || typeof i !== "number" || typeof l !== "number" || !(p instanceof Uint8Array)) {
      return "data message without numeric f, i, l and byte string p";
    }
    if (f !== this.#o.fileId) return `block for file ${f}, this download is file ${this.#o.fileId}`;
    if (!Number.isInteger(i) || i < 0 || i >= this.#blocks) return `block index ${i} is outside the file's ${this.#blocks} blocks`;
    const expected = i === this.#blocks - 1 ? this.#o.size - i * this.#blockSize : this.#blockSize;
    if (p.length !== expected || (l !== this.#blockSize && l !== p.length)) return `block ${i} has ${p.length} bytes (l = ${l}); expected ${expected}`;
    return { i, p };
  }

  #block(payload: Uint8Array): void {
    const checked = this.#check(payload);
    if (typeof checked === "string") {
      this.#result.refused++;
      this.#problem = checked;
      return;
    }
    const { i, p } = checked;
    if (!this.#isNeeded(i)) {
      this.#result.duplicates++;
      return;
    }
    if (this.#o.beforeWrite?.(i, p) === false) {
      // Not yet (a block ahead of the header's): it stays needed and is asked for again.
      this.#result.early++;
      return;
    }
    this.#o.writer.writeAt(i * this.#blockSize, p);
    this.#needed[i >> 3] &= ~(1 << (i & 7));
    this.#remaining--;
    this.#result.blocks++;
    this.#bytes += p.length;
    this.#floor.check(this.#bytes);
    this.#quiet = 0;
    this.#problem = undefined;
    this.#advanceHash(i, p);
    this.#o.persist?.({ bitmap: this.#needed, erasedTo: this.#o.writer.erasedTo });
    const request = this.#inFlight.find((r) => i >= r.first && i < r.first + r.count);
    if (request && !this.#anyNeeded(request.first, request.count)) this.#retire(request);
    else if (request) this.#rearm(request);
    this.#fill();
  }

  #rejected(payload: Uint8Array): void {
    let code = "unknown", message = "";
    try {
      const m = decode(payload);
      // AWS echoes the request's token (as `c`, and as `clientToken` in what it really sends):
      // a refusal of another download's request on the same stream is not ours.
      const token = typeof m["c"] === "string" ? m["c"] : m["clientToken"];
      if (typeof token === "string" && token !== this.#token) return;
      const o = m["o"] ?? m["code"], text = m["m"] ?? m["message"];
      if (typeof o === "string") code = o;
      if (typeof text === "string") message = text;
    } catch {
      // a refusal we cannot even read is still a refusal
    }
    throw new OtaError("stream-rejected", `stream service refused the request: ${code}${message ? ` (${message})` : ""}`);
  }

  /** Feeds digests with every block from the last hashed one that is now in flash. */
  #advanceHash(justReceived?: number, bytes?: Uint8Array): void {
    while (this.#hashedBlocks < this.#blocks && !this.#isNeeded(this.#hashedBlocks)) {
      const i = this.#hashedBlocks;
      const data = i === justReceived && bytes ? bytes : new Uint8Array(this.#o.writer.read(Math.min(this.#blockSize, this.#o.size - i * this.#blockSize), i * this.#blockSize));
      for (const d of this.#o.digests) d.update(data);
      this.#hashedBlocks++;
    }
    if (this.#remaining === 0 && this.#hashedBlocks === this.#blocks) this.#finish();
  }

  #anyNeeded(first: number, count: number): boolean {
    for (let i = first; i < first + count; i++) if (this.#isNeeded(i)) return true;
    return false;
  }

  /**
   * Sends requests until the window is full or nothing needed is left unrequested. Ranges are
   * requested in order, so everything below the cursor is received or in flight (a range that
   * goes quiet is asked again by its timer): the scan never starts over from block 0.
   */
  #fill(): void {
    while (!this.#done && this.#inFlight.length < (this.#o.window ?? 2)) {
      while (this.#cursor < this.#blocks && !this.#isNeeded(this.#cursor)) this.#cursor++;
      if (this.#cursor >= this.#blocks) return;
      const first = this.#cursor;
      const count = Math.min(this.#perRequest, this.#blocks - first);
      this.#cursor = first + count;
      this.#send(first, count);
      this.#inFlight.push({ first, count, timer: this.#timer(first) });
    }
  }

  #send(first: number, count: number): void {
    this.#o.writer.prepare(Math.min(this.#o.size, (first + count) * this.#blockSize));
    const bitmap = new Uint8Array(Math.ceil(count / 8));
    let wanted = 0;
    for (let k = 0; k < count; k++) {
      if (this.#isNeeded(first + k)) {
        bitmap[k >> 3] |= 1 << (k & 7);
        wanted++;
      }
    }
    const request: CborMap = { c: this.#token, f: this.#o.fileId, l: this.#blockSize, o: first, n: wanted, b: bitmap };
    this.#result.requests++;
    this.#o.mqtt.publish(this.#topics.get, encodeCbor(request), this.#o.qos ?? 0).catch((e: unknown) => {
      // Not sent while the broker is away (a drop, a cloud restart) is a request lost on the way:
      // its timer asks again, and the quiet count still bounds how long that may go on.
      if (isOtaError(e, "network")) return;
      this.#fail(e);
    });
  }

  #timer(first: number): TimerId {
    return this.#o.clock.setTimer(this.#o.requestTimeout ?? 10000, () => this.#timedOut(first));
  }

  #rearm(request: InFlight): void {
    this.#o.clock.clearTimer(request.timer);
    request.timer = this.#timer(request.first);
  }

  #retire(request: InFlight): void {
    this.#o.clock.clearTimer(request.timer);
    this.#inFlight.splice(this.#inFlight.indexOf(request), 1);
  }

  #timedOut(first: number): void {
    const request = this.#inFlight.find((r) => r.first === first);
    if (!request || this.#done) return;
    try {
      this.#quiet++;
      this.#result.retries++;
      this.#floor.check(this.#bytes);
      if (this.#quiet > (this.#o.maxRetries ?? 5)) {
        const missing = `${this.#quiet} requests in a row without a good block (${this.#remaining} blocks missing)`;
        if (this.#problem) throw new OtaError("stream-protocol", `stream sends bad messages: ${this.#problem}; ${missing}`);
        throw new OtaError("no-progress", `stream went quiet: ${missing}`);
      }
      this.#send(request.first, request.count);
      request.timer = this.#timer(request.first);
    } catch (e) {
      this.#fail(e);
    }
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    for (const r of this.#inFlight) this.#o.clock.clearTimer(r.timer);
    this.#inFlight.length = 0;
    this.#settle.resolve(this.#result);
  }

  #fail(e: unknown): void {
    if (this.#done) return;
    this.#done = true;
    for (const r of this.#inFlight) this.#o.clock.clearTimer(r.timer);
    this.#inFlight.length = 0;
    this.#settle.reject(isOtaError(e) ? e : new OtaError("stream-protocol", String(e)));
  }
}

function decode(payload: Uint8Array): CborMap {
  let value;
  try {
    value = decodeCbor(payload);
  } catch (e) {
    throw new OtaError("stream-protocol", `undecodable stream message: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value instanceof Uint8Array) throw new OtaError("stream-protocol", "stream message is not a CBOR map");
  return value;
}
