/**
 * A local stand-in for AWS IoT MQTT-based file delivery ("streams"), CBOR flavour, for the
 * desktop cloud and its tests (Node only). It listens on an MQTT broker (aedes, or anything
 * with the same three methods) and answers GetStream and DescribeStream requests the way the
 * AWS service does, as far as AWS documents it or devices have observed it. CBOR here is cborg,
 * deliberately independent of the device's own codec.
 *
 * ## Protocol facts (and where they come from)
 *
 * Sources:
 *  [G]  AWS IoT Developer Guide, "Using AWS IoT MQTT-based file delivery in devices"
 *       https://docs.aws.amazon.com/iot/latest/developerguide/mqtt-based-file-delivery-in-devices.html
 *       (markdown source: github.com/awsdocs/aws-iot-docs, doc_source/mqtt-based-file-delivery-in-devices.md)
 *  [T]  AWS IoT Developer Guide, "Reserved topics", section "MQTT-based file delivery topics"
 *       (awsdocs/aws-iot-docs, doc_source/reserved-topics.md)
 *  [O]  FreeRTOS OTA agent, github.com/aws/ota-for-aws-iot-embedded-sdk: source/ota_cbor.c,
 *       source/include/ota_cbor_private.h, source/ota_mqtt.c, source/ota.c,
 *       source/include/ota_config_defaults.h, source/include/ota_private.h
 *  [I3] github.com/aws-samples/aws-iot-mqtt-download-agent issue #3 (a rejection captured from AWS, CBOR)
 *  [I4] github.com/aws-samples/aws-iot-mqtt-download-agent issue #4 (a rejection captured from AWS, JSON)
 *
 * Topics [T][G]: for thing T and stream S, with payload format `cbor` (or `json`):
 *   device publishes  $aws/things/T/streams/S/get/cbor        (GetStream)
 *                     $aws/things/T/streams/S/describe/cbor   (DescribeStream)
 *   device subscribes $aws/things/T/streams/S/data/cbor       (one message per block)
 *                     $aws/things/T/streams/S/description/cbor
 *                     $aws/things/T/streams/S/rejected/cbor   (errors of both requests)
 * Stream IDs match [a-zA-Z0-9_-]{1,128} (CreateStream API), so they are single topic levels.
 *
 * GetStream request, a CBOR map with one-letter text keys [G][O]:
 *   c  client token, text, optional, at most 64 bytes, else InvalidRequest [G].
 *   s  stream version, integer, optional; different from the stream's version: VersionMismatch [G].
 *   f  file ID, integer 0..255, required; no such file: ResourceNotFound [G].
 *   l  block size in bytes, integer 256..131072, required; outside: BlockSizeOutOfBounds [G].
 *      Not necessarily a power of two (the guide's example uses 4098) [G].
 *   o  offset, in blocks, integer 0..98304, optional, default 0 (98304 = 24 MB / 256 B) [G];
 *      the documented code for out-of-bounds values is OffsetOutOfBounds [G].
 *   n  number of blocks, integer 0..98304, optional [G]: without b, the n blocks from o;
 *      with b, a cap on how many of the bitmap's blocks are sent; default 131072 / l [G].
 *      Outside the quota: BlockCountLimitExceeded [G].
 *   b  bitmap, optional, a CBOR byte string (the reference agent encodes it with
 *      cbor_encode_byte_string [O]; JSON uses a hex string [G]); smaller than 12,288 bytes,
 *      else BlockBitmapLimitExceeded [G]. Bit k set requests block o + k, where bit k is
 *      (1 << (k % 8)) of byte k / 8, least significant bit first: the agent tests received
 *      blocks with `1U << (blockIndex % 8)` in byte `blockIndex >> 3` and clears the top bits of
 *      its last bitmap byte for blocks past the end of the file [O].
 *   "Either n or b should be specified"; with neither, a request for a file smaller than
 *   128 KB may be invalid (current text of [G]: the default n then reaches past the end).
 *   The reference agent always sends all six keys: c = "rdy", o = 0, a bitmap of the whole
 *   file, n = otaconfigMAX_NUM_BLOCKS_REQUEST (default 1) [O].
 *
 * Per-request limit [G][O]: a block is at most 128 KB, and one GetStream is answered with at
 * most 128 KB of blocks. A request for more (e.g. 5 blocks of 32 KB) does NOT fail: the service
 * sends the first 131072 / l blocks and the device must ask again for the rest [G]; the agent
 * sizes its n accordingly ("128 KB from service divided by the block size") [O]. So only n
 * outside 0..98304 is an error (BlockCountLimitExceeded), a large n is silently truncated.
 *
 * Data message, one per block, a CBOR map [G][O]:
 *   c  the request's client token, present when the request had one [G]
 *   f  file ID (integer), l  payload size in bytes (integer), i  block index from 0 (integer),
 *   p  the block (byte string in CBOR, hex text in JSON) [G]. The agent reads f, i, l as
 *   integers and p as a byte string and ignores other keys [O].
 * Every block is exactly l bytes except the file's last block, which holds the remainder
 * (file size - last index * l): the agent rejects any other length [O].
 *
 * Rejections, on .../rejected/cbor [G][I3][I4]. Documented shape: {"o": code, "m": message,
 * "c": token}; "for backward compatibility" the long names "code", "clientToken" (and
 * "message") may appear instead [G]. What AWS actually sent: BOTH forms, e.g. JSON
 * {"clientToken":"rdy","c":"rdy","code":"InvalidRequest","o":"InvalidRequest","message":...,"m":...}
 * [I4], and in CBOR an indefinite-length map (0xBF ... 0xFF) with "code","o","message","m"
 * [I3]. The token is left out when the request's token was invalid or unreadable [G][I3].
 * Codes [G]: InvalidTopic, InvalidJson, InvalidCbor, InvalidRequest, Unauthorized,
 * BlockSizeOutOfBounds, OffsetOutOfBounds, BlockCountLimitExceeded, BlockBitmapLimitExceeded,
 * ResourceNotFound, VersionMismatch, ETagMismatch, InternalError. Observed messages:
 * "Invalid CBOR message" (InvalidCbor) [I3]; "The data requested is out of the range of data
 * available." (InvalidRequest) for a request reaching past the end of the file [I4].
 *
 * QoS: AWS IoT has QoS 0 and 1 only. The reference agent publishes GetStream at QoS 0 and
 * subscribes to data/cbor at QoS 0 [O] (jobs topics at QoS 1): lost blocks are recovered by
 * asking again with the bitmap, not by MQTT. The QoS AWS itself publishes blocks with is not
 * documented; the broker delivers at most at the subscription's QoS.
 *
 * DescribeStream [G]: request {c?}; answer on description/cbor {c?, s: version, d: description,
 * r: [{f: file ID, z: size in bytes}]}.
 *
 * ## Choices where AWS says nothing (kept in one place so a device cannot rely on them by accident)
 * - Check order: topic, CBOR, shape and types, c, s/f/l/o/n/b ranges, stream, version, file,
 *   range against the file. A request breaking several rules gets the first code in that order.
 * - Wrong CBOR types (f as text, b as text, a non-map) and a missing f or l: InvalidRequest.
 *   Integral floats (e.g. 256.0) are accepted as integers; unknown keys are ignored.
 * - Blocks past the end of the file, however requested (o beyond the last block, o + n beyond
 *   it without b, or a bitmap bit beyond it): InvalidRequest "The data requested is out of the
 *   range of data available." and nothing is sent. OffsetOutOfBounds only for o outside 0..98304.
 * - n = 0 means "not given". A bitmap with no bit set, or an empty one, sends nothing and no error.
 * - A valid client token is echoed in every rejection (InvalidTopic included); an invalid one never.
 * - Blocks go out in ascending block order (the bitmap's order), after the previous request's.
 *   The real broker promises no order at all (AWS IoT does not guarantee message order), so a
 *   device must place blocks by `i`, not by arrival; the `order` action simulates disorder.
 * - Thing names: the stream is registered for one thing or for "*" (any); a thing the stream
 *   is not registered for gets ResourceNotFound. Thing names outside [a-zA-Z0-9:_-]{1,128} and
 *   stream IDs outside [a-zA-Z0-9_-]{1,128} get InvalidTopic.
 * - Data messages are definite-length CBOR maps (cborg's canonical key order: c, f, i, l, p;
 *   AWS's order is not documented and the agent looks keys up by name); rejections copy the observed indefinite-length
 *   map with both key forms (option rejectionFormat: "documented" sends {o, m, c} instead).
 * - JSON topics (get/json ...) are not answered: this service speaks CBOR only.
 */
import { decode, encode } from "cborg";
import { OtaError } from "../modules/errors.ts";
import { BrokerListener } from "./broker-listener.ts";
import { concatBytes } from "../modules/codec/bytes.ts";

export type StreamErrorCode =
  | "InvalidTopic"
  | "InvalidJson"
  | "InvalidCbor"
  | "InvalidRequest"
  | "Unauthorized"
  | "BlockSizeOutOfBounds"
  | "OffsetOutOfBounds"
  | "BlockCountLimitExceeded"
  | "BlockBitmapLimitExceeded"
  | "ResourceNotFound"
  | "VersionMismatch"
  | "ETagMismatch"
  | "InternalError";

/** The documented limits of a GetStream request [G]. */
export const STREAM_LIMITS = {
  minBlockSize: 256,
  maxBlockSize: 131_072,
  /** Most bytes of blocks sent for one request. */
  bytesPerRequest: 131_072,
  maxOffset: 98_304,
  maxBlockCount: 98_304,
  /** "The bitmap must be less than 12,288 bytes." */
  maxBitmapBytes: 12_287,
  maxClientTokenBytes: 64,
  maxFileId: 255,
} as const;

export const OUT_OF_RANGE_MESSAGE = "The data requested is out of the range of data available.";

/** The topics of one stream as seen by one thing. */
export function streamTopics(thing: string, streamId: string) {
  const base = `$aws/things/${thing}/streams/${streamId}`;
  return {
    get: `${base}/get/cbor`,
    data: `${base}/data/cbor`,
    rejected: `${base}/rejected/cbor`,
    describe: `${base}/describe/cbor`,
    description: `${base}/description/cbor`,
  };
}

/** A message as the broker hands it to an in-process subscriber (aedes' AedesPublishPacket fits). */
export interface BrokerPacket {
  topic: string;
  payload: Buffer | string;
}

/** A message the service publishes (assignable to aedes' PublishPacket). */
export interface BrokerPublish {
  cmd: "publish";
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: false;
  dup: false;
}

/** The part of a broker the service uses; an aedes `Aedes` instance satisfies it. */
export interface StreamBroker {
  subscribe(topic: string, deliver: (packet: BrokerPacket, done: () => void) => void, ready: () => void): void;
  unsubscribe(topic: string, deliver: (packet: BrokerPacket, done: () => void) => void, done: () => void): void;
  publish(packet: BrokerPublish, done: (error?: Error) => void): void;
}

/** A GetStream request that passed every check. */
export interface GetStreamRequest {
  c?: string;
  s?: number;
  f: number;
  l: number;
  o: number;
  n?: number;
  b?: Uint8Array;
}

export interface StreamRejection {
  code: StreamErrorCode;
  message: string;
}

/** What `onRequest` sees of each GetStream request, before the service acts on it. */
export interface StreamRequestInfo {
  /** 0 for the service's first GetStream request, then 1, 2, ... */
  index: number;
  thing: string;
  streamId: string;
  topic: string;
  /** The request's bytes as received. */
  payload: Uint8Array;
  /** The request when it passed every check, else undefined. */
  request: GetStreamRequest | undefined;
  /** The rejection the service will send unless the action says otherwise. */
  rejection: StreamRejection | undefined;
  /** The block indices the service will send, in order (empty when rejected). */
  blocks: number[];
}

/** A data message before encoding; tests may change, add or delete keys. */
export type DataMessage = Record<string, unknown>;

/** Hostile behaviour for one request, returned by `onRequest`. Unset fields mean "as AWS would". */
export interface StreamAction {
  /** Send nothing at all for this request. */
  drop?: boolean;
  /** Send these bytes instead of any answer (one message each), on `rawTopic` (default "data"). */
  raw?: Uint8Array | readonly Uint8Array[];
  rawTopic?: "data" | "rejected";
  /** Reject the request with this code, whatever it asked. */
  reject?: { code: StreamErrorCode; message?: string };
  /**
   * Called for each data message: return a (changed) message to encode, raw bytes to send as
   * they are, or undefined to leave that block out.
   */
  mutate?: (message: DataMessage, block: { index: number; data: Uint8Array }) => DataMessage | Uint8Array | undefined;
  /** Send every data message twice in a row. */
  duplicate?: boolean;
  /** Send these blocks in this order instead (may reorder, repeat or omit; indices past the file give empty blocks). */
  order?: (blocks: number[]) => number[];
}

export interface AwsStreamServiceOptions {
  /** A cap on blocks per request below AWS's 131072 / l (simulates a stricter service). */
  maxBlocksPerRequest?: number;
  /** QoS the service publishes with; default 0, the reference agent's QoS for this path. */
  qos?: 0 | 1;
  /** "observed" (default): what AWS sent [I3][I4]; "documented": {o, m, c} as in the guide. */
  rejectionFormat?: "observed" | "documented";
  onRequest?: (request: StreamRequestInfo) => StreamAction | undefined | void;
}

export interface StreamCounters {
  /** GetStream requests received (valid or not). */
  requests: number;
  describeRequests: number;
  /** Bytes of request payloads received. */
  requestBytes: number;
  /** Rejections sent, in total and by code. */
  rejections: number;
  rejectionsByCode: Partial<Record<StreamErrorCode, number>>;
  /** Data messages sent (a duplicate counts twice; a dropped or left-out block not at all). */
  blocksSent: number;
  /** Bytes of `p` in the data messages sent: the image bytes carried. */
  payloadBytes: number;
  /** Every message the service published: topic bytes + payload bytes. */
  messageBytes: number;
  /** The same messages as whole MQTT PUBLISH packets at the service's QoS (header, topic, id, payload). */
  wireBytes: number;
}

export interface StreamFileInput {
  fileId: number;
  data: Uint8Array;
}

interface Stream {
  version: number;
  description: string;
  files: Map<number, Uint8Array>;
}

const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
const STREAM_ID = /^[a-zA-Z0-9_-]{1,128}$/;
const GET_FILTER = "$aws/things/+/streams/+/get/cbor";
const DESCRIBE_FILTER = "$aws/things/+/streams/+/describe/cbor";

const utf8Length = (s: string) => Buffer.byteLength(s, "utf8");

function emptyCounters(): StreamCounters {
  return {
    requests: 0,
    describeRequests: 0,
    requestBytes: 0,
    rejections: 0,
    rejectionsByCode: {},
    blocksSent: 0,
    payloadBytes: 0,
    messageBytes: 0,
    wireBytes: 0,
  };
}

/** Size of an MQTT 3.1.1 PUBLISH packet: fixed header, remaining length, topic, packet id, payload. */
export function publishPacketSize(topic: string, payloadBytes: number, qos: 0 | 1): number {
  const remaining = 2 + utf8Length(topic) + (qos > 0 ? 2 : 0) + payloadBytes;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4;
  return 1 + lengthBytes + remaining;
}

class Rejected extends Error {
  constructor(
    readonly code: StreamErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type Integer = { ok: true; value: number } | { ok: false };

/** An integer (bigints beyond 2^53 become +-Infinity: out of every range) or not. */
function integer(v: unknown): Integer {
  if (typeof v === "number" && Number.isInteger(v)) return { ok: true, value: v };
  if (typeof v === "bigint") return { ok: true, value: v > 0n ? Infinity : -Infinity };
  return { ok: false };
}

function readRequestMap(payload: Uint8Array): Map<string, unknown> {
  let value: unknown;
  try {
    value = decode(payload, { useMaps: true });
  } catch {
    throw new Rejected("InvalidCbor", "Invalid CBOR message");
  }
  if (!(value instanceof Map)) throw new Rejected("InvalidRequest", "The request must be a CBOR map");
  const fields = new Map<string, unknown>();
  for (const [k, v] of value) {
    if (typeof k !== "string") throw new Rejected("InvalidRequest", "The request's keys must be text strings");
    fields.set(k, v);
  }
  return fields;
}

/** The client token of a request, when it is one AWS would echo (whatever else is wrong with it). */
function validToken(payload: Uint8Array): string | undefined {
  let c: unknown;
  try {
    c = readRequestMap(payload).get("c");
  } catch {
    return undefined;
  }
  return typeof c === "string" && utf8Length(c) <= STREAM_LIMITS.maxClientTokenBytes ? c : undefined;
}

function checkToken(fields: Map<string, unknown>): string | undefined {
  if (!fields.has("c")) return undefined;
  const c = fields.get("c");
  if (typeof c !== "string") throw new Rejected("InvalidRequest", "The client token must be a text string");
  if (utf8Length(c) > STREAM_LIMITS.maxClientTokenBytes) {
    throw new Rejected("InvalidRequest", `The client token is longer than ${STREAM_LIMITS.maxClientTokenBytes} bytes`);
  }
  return c;
}

function parseGetStream(fields: Map<string, unknown>): GetStreamRequest {
  const c = checkToken(fields);
  const request: GetStreamRequest = { f: 0, l: 0, o: 0 };
  if (c !== undefined) request.c = c;

  if (fields.has("s")) {
    const s = integer(fields.get("s"));
    if (!s.ok || s.value < 0) throw new Rejected("InvalidRequest", "The stream version must be a non-negative integer");
    request.s = s.value;
  }

  if (!fields.has("f")) throw new Rejected("InvalidRequest", "The file ID (f) is required");
  const f = integer(fields.get("f"));
  if (!f.ok || f.value < 0 || f.value > STREAM_LIMITS.maxFileId) {
    throw new Rejected("InvalidRequest", `The file ID must be an integer from 0 to ${STREAM_LIMITS.maxFileId}`);
  }
  request.f = f.value;

  if (!fields.has("l")) throw new Rejected("InvalidRequest", "The block size (l) is required");
  const l = integer(fields.get("l"));
  if (!l.ok) throw new Rejected("InvalidRequest", "The block size must be an integer");
  if (l.value < STREAM_LIMITS.minBlockSize || l.value > STREAM_LIMITS.maxBlockSize) {
    throw new Rejected("BlockSizeOutOfBounds", "The block size is out of bounds");
  }
  request.l = l.value;

  if (fields.has("o")) {
    const o = integer(fields.get("o"));
    if (!o.ok) throw new Rejected("InvalidRequest", "The block offset must be an integer");
    if (o.value < 0 || o.value > STREAM_LIMITS.maxOffset) throw new Rejected("OffsetOutOfBounds", "The offset is out of bounds");
    request.o = o.value;
  }

  if (fields.has("n")) {
    const n = integer(fields.get("n"));
    if (!n.ok) throw new Rejected("InvalidRequest", "The number of blocks must be an integer");
    if (n.value < 0 || n.value > STREAM_LIMITS.maxBlockCount) {
      throw new Rejected("BlockCountLimitExceeded", "The number of request blocks is out of bounds");
    }
    request.n = n.value;
  }

  if (fields.has("b")) {
    const b = fields.get("b");
    if (!(b instanceof Uint8Array)) throw new Rejected("InvalidRequest", "The bitmap must be a byte string");
    if (b.length > STREAM_LIMITS.maxBitmapBytes) {
      throw new Rejected("BlockBitmapLimitExceeded", "The size of the request bitmap is out of bounds");
    }
    request.b = b;
  }
  return request;
}

/** The blocks one request gets, in sending order; throws the out-of-range rejection. */
function selectBlocks(request: GetStreamRequest, fileSize: number, cap: number | undefined): number[] {
  const blockCount = Math.ceil(fileSize / request.l);
  const perRequest = Math.min(Math.floor(STREAM_LIMITS.bytesPerRequest / request.l), cap ?? Infinity);
  const n = request.n !== undefined && request.n > 0 ? request.n : undefined;
  const outOfRange = () => new Rejected("InvalidRequest", OUT_OF_RANGE_MESSAGE);
  if (request.o >= blockCount) throw outOfRange();
  if (request.b === undefined) {
    const count = n ?? Math.floor(STREAM_LIMITS.bytesPerRequest / request.l);
    if (request.o + count > blockCount) throw outOfRange();
    const sent = Math.min(count, perRequest);
    return Array.from({ length: sent }, (_, k) => request.o + k);
  }
  const wanted: number[] = [];
  request.b.forEach((byte, at) => {
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) wanted.push(request.o + at * 8 + bit);
  });
  if (wanted.length > 0 && wanted[wanted.length - 1] >= blockCount) throw outOfRange();
  return wanted.slice(0, Math.min(n ?? Infinity, perRequest));
}

function encodeRejection(rejection: StreamRejection, token: string | undefined, format: "observed" | "documented"): Uint8Array {
  if (format === "documented") {
    return encode(token === undefined ? { o: rejection.code, m: rejection.message } : { o: rejection.code, m: rejection.message, c: token });
  }
  const entries: [string, string][] = [];
  if (token !== undefined) entries.push(["clientToken", token], ["c", token]);
  entries.push(["code", rejection.code], ["o", rejection.code], ["message", rejection.message], ["m", rejection.message]);
  // An indefinite-length map, as AWS sent it [I3]: 0xBF, key, value, ..., 0xFF.
  return concatBytes([Uint8Array.of(0xbf), ...entries.flatMap(([k, v]) => [encode(k), encode(v)]), Uint8Array.of(0xff)]);
}

export class AwsStreamService {
  readonly #broker: StreamBroker;
  readonly #options: AwsStreamServiceOptions;
  readonly #streams = new Map<string, Stream>();
  #counters = emptyCounters();
  #requestIndex = 0;
  readonly #listener: BrokerListener;

  constructor(broker: StreamBroker, options: AwsStreamServiceOptions = {}) {
    if (options.maxBlocksPerRequest !== undefined && !(Number.isInteger(options.maxBlocksPerRequest) && options.maxBlocksPerRequest > 0)) {
      throw new OtaError("bad-argument", "maxBlocksPerRequest must be a positive integer");
    }
    this.#broker = broker;
    this.#options = options;
    // A plain Uint8Array for the handlers: Buffer's slice() shares memory where Uint8Array's copies.
    this.#listener = new BrokerListener(broker, [GET_FILTER, DESCRIBE_FILTER], (topic, payload) => this.#handle(topic, new Uint8Array(payload)));
  }

  /** The last failure while answering (a broker that refused a publish, a mutate that threw). */
  get lastError(): unknown {
    return this.#listener.lastError;
  }

  /** Subscribes to GetStream and DescribeStream requests of every thing and stream. */
  start(): Promise<void> {
    return this.#listener.start();
  }

  /** Stops listening and waits until every request received so far has been answered. */
  stop(): Promise<void> {
    return this.#listener.stop();
  }

  /** Resolves when every request received so far has been answered. */
  idle(): Promise<void> {
    return this.#listener.idle();
  }

  /**
   * Registers (or replaces) stream `streamId` for `thing` ("*": any thing). Replacing a stream
   * raises its version by one unless `options.version` says otherwise. Returns the version.
   */
  addStream(thing: string, streamId: string, files: readonly StreamFileInput[], options: { version?: number; description?: string } = {}): number {
    if (thing !== "*" && !THING_NAME.test(thing)) throw new OtaError("bad-argument", `thing name ${JSON.stringify(thing)}`);
    if (!STREAM_ID.test(streamId)) throw new OtaError("bad-argument", `stream ID ${JSON.stringify(streamId)}: [a-zA-Z0-9_-]{1,128}`);
    if (!Array.isArray(files) || files.length === 0) throw new OtaError("bad-argument", "a stream needs at least one file");
    const map = new Map<number, Uint8Array>();
    for (const file of files) {
      if (!Number.isInteger(file.fileId) || file.fileId < 0 || file.fileId > STREAM_LIMITS.maxFileId) {
        throw new OtaError("bad-argument", `file ID ${String(file.fileId)}: an integer from 0 to 255`);
      }
      if (map.has(file.fileId)) throw new OtaError("bad-argument", `file ID ${file.fileId} given twice`);
      if (!(file.data instanceof Uint8Array)) throw new OtaError("bad-argument", `file ${file.fileId}: data must be a Uint8Array`);
      map.set(file.fileId, new Uint8Array(file.data));
    }
    if (options.version !== undefined && !(Number.isInteger(options.version) && options.version >= 0)) {
      throw new OtaError("bad-argument", "version must be a non-negative integer");
    }
    const key = `${thing}/${streamId}`;
    const previous = this.#streams.get(key);
    const version = options.version ?? (previous ? previous.version + 1 : 1);
    this.#streams.set(key, { version, description: options.description ?? `stream ${streamId}`, files: map });
    return version;
  }

  removeStream(thing: string, streamId: string): boolean {
    return this.#streams.delete(`${thing}/${streamId}`);
  }

  /** A snapshot of the counters. */
  get counters(): StreamCounters {
    return { ...this.#counters, rejectionsByCode: { ...this.#counters.rejectionsByCode } };
  }

  resetCounters(): void {
    this.#counters = emptyCounters();
  }

  #lookup(thing: string, streamId: string): Stream | undefined {
    return this.#streams.get(`${thing}/${streamId}`) ?? this.#streams.get(`*/${streamId}`);
  }

  async #handle(topic: string, payload: Uint8Array): Promise<void> {
    // $aws/things/<thing>/streams/<stream>/<get|describe>/cbor: '+' matches exactly one level.
    const [, , thing = "", , streamId = "", operation] = topic.split("/");
    if (operation === "describe") return this.#describe(thing, streamId, payload);
    return this.#getStream(topic, thing, streamId, payload);
  }

  #checkTopic(thing: string, streamId: string): void {
    if (!THING_NAME.test(thing)) throw new Rejected("InvalidTopic", "The MQTT topic of the stream message is invalid: thing name");
    if (!STREAM_ID.test(streamId)) throw new Rejected("InvalidTopic", "The MQTT topic of the stream message is invalid: stream ID");
  }

  async #getStream(topic: string, thing: string, streamId: string, payload: Uint8Array): Promise<void> {
    this.#counters.requests++;
    this.#counters.requestBytes += payload.length;
    const index = this.#requestIndex++;
    let request: GetStreamRequest | undefined;
    let rejection: StreamRejection | undefined;
    let blocks: number[] = [];
    let file: Uint8Array | undefined;
    try {
      this.#checkTopic(thing, streamId);
      request = parseGetStream(readRequestMap(payload));
      const stream = this.#lookup(thing, streamId);
      if (stream === undefined) throw new Rejected("ResourceNotFound", `The stream ${streamId} was not found`);
      if (request.s !== undefined && request.s !== stream.version) {
        throw new Rejected("VersionMismatch", `The stream version ${request.s} does not match the stream version ${stream.version}`);
      }
      file = stream.files.get(request.f);
      if (file === undefined) throw new Rejected("ResourceNotFound", `The file ${request.f} of stream ${streamId} was not found`);
      blocks = selectBlocks(request, file.length, this.#options.maxBlocksPerRequest);
    } catch (e) {
      if (!(e instanceof Rejected)) throw e;
      rejection = { code: e.code, message: e.message };
      request = undefined;
      blocks = [];
    }
    const token = validToken(payload);
    const topics = streamTopics(thing, streamId);

    const action = this.#options.onRequest?.({ index, thing, streamId, topic, payload, request, rejection, blocks: [...blocks] }) ?? {};
    if (action.drop) return;
    if (action.raw !== undefined) {
      const raws = action.raw instanceof Uint8Array ? [action.raw] : action.raw;
      for (const raw of raws) await this.#publish(action.rawTopic === "rejected" ? topics.rejected : topics.data, raw);
      return;
    }
    if (action.reject !== undefined) {
      return this.#reject(topics.rejected, { code: action.reject.code, message: action.reject.message ?? action.reject.code }, token);
    }
    if (rejection !== undefined || request === undefined || file === undefined) {
      return this.#reject(topics.rejected, rejection ?? { code: "InternalError", message: "internal error" }, token);
    }

    for (const i of action.order ? action.order([...blocks]) : blocks) {
      const data = file.subarray(i * request.l, Math.min((i + 1) * request.l, file.length));
      const message: DataMessage = request.c === undefined ? {} : { c: request.c };
      Object.assign(message, { f: request.f, l: data.length, i, p: data });
      const out = action.mutate ? action.mutate(message, { index: i, data }) : message;
      if (out === undefined) continue;
      const bytes = out instanceof Uint8Array ? out : encode(out, { ignoreUndefinedProperties: true });
      const carried = out instanceof Uint8Array ? 0 : out.p instanceof Uint8Array ? out.p.length : 0;
      for (let copy = 0; copy < (action.duplicate ? 2 : 1); copy++) {
        await this.#publish(topics.data, bytes);
        this.#counters.blocksSent++;
        this.#counters.payloadBytes += carried;
      }
    }
  }

  async #describe(thing: string, streamId: string, payload: Uint8Array): Promise<void> {
    this.#counters.describeRequests++;
    this.#counters.requestBytes += payload.length;
    const topics = streamTopics(thing, streamId);
    try {
      this.#checkTopic(thing, streamId);
      const c = checkToken(readRequestMap(payload));
      const stream = this.#lookup(thing, streamId);
      if (stream === undefined) throw new Rejected("ResourceNotFound", `The stream ${streamId} was not found`);
      const answer: DataMessage = c === undefined ? {} : { c };
      Object.assign(answer, {
        s: stream.version,
        d: stream.description,
        r: [...stream.files].map(([f, data]) => ({ f, z: data.length })),
      });
      await this.#publish(topics.description, encode(answer));
    } catch (e) {
      if (!(e instanceof Rejected)) throw e;
      await this.#reject(topics.rejected, { code: e.code, message: e.message }, validToken(payload));
    }
  }

  async #reject(topic: string, rejection: StreamRejection, token: string | undefined): Promise<void> {
    this.#counters.rejections++;
    this.#counters.rejectionsByCode[rejection.code] = (this.#counters.rejectionsByCode[rejection.code] ?? 0) + 1;
    await this.#publish(topic, encodeRejection(rejection, token, this.#options.rejectionFormat ?? "observed"));
  }

  #publish(topic: string, payload: Uint8Array): Promise<void> {
    const qos = this.#options.qos ?? 0;
    this.#counters.messageBytes += utf8Length(topic) + payload.length;
    this.#counters.wireBytes += publishPacketSize(topic, payload.length, qos);
    const packet: BrokerPublish = {
      cmd: "publish",
      topic,
      payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      qos,
      retain: false,
      dup: false,
    };
    return new Promise<void>((resolve, reject) => {
      this.#broker.publish(packet, (error) => (error ? reject(error) : resolve()));
    });
  }
}
