/**
 * A local stand-in for EnOS device OTA, the cloud side (Node only), on an in-process MQTT broker
 * (aedes, or anything with StreamBroker's three methods), plus a small HTTP file endpoint that
 * serves the firmware files. See modules/enos/client.ts for the protocol facts and their sources;
 * in short, for product key PK and device key DK:
 *
 *   device -> cloud  /sys/PK/DK/ota/device/inform      {id, version:"1.0", method, params:{version}}
 *                    /sys/PK/DK/ota/device/progress    params {step (a string, 0..100 or -1..-4), desc}
 *                    /sys/PK/DK/ota/device/getversion  params {}
 *                    /sys/PK/DK/ota/device/upgrade_reply  {id, code, data, message?}
 *   cloud -> device  <request topic>_reply             {id, code: 200, data}
 *                    /sys/PK/DK/ota/device/upgrade     params {version, sign, signMethod, fileUrl, fileSize}
 *
 * What this service does:
 * - keeps, per device (product key / device key), the version it last informed, every inform,
 *   every progress message and how often it asked getversion;
 * - answers inform and progress with {id, code: 200, data: {}} as EnOS does;
 * - keeps, per product, the firmware on offer (`addFirmware`): `sign` is the md5 (default) or
 *   sha256 of the file in lower-case hex, `fileSize` its length, `fileUrl` a path
 *   "/<productKey>/ota/<fileName>" relative to the file endpoint (EnOS samples show such paths,
 *   e.g. "/1b30e0ea83002000/ota/kadak13"; the device resolves them against its file base URL);
 * - answers getversion with the firmware of the device's product that is strictly newer than the
 *   version the device last informed (every firmware when it has informed none, or informed one
 *   that is not a version), newest first: data [{version, sign, signMethod, fileUrl, fileSize}];
 * - `pushUpgrade` publishes an upgrade request (id chosen by the service unless given) and
 *   resolves with the device's upgrade_reply;
 * - `setGetVersionAnswer` makes getversion answer one device with a given list, an error reply or
 *   nothing at all instead of the catalog (a stale, failing or silent cloud).
 *
 * Choices where EnOS says nothing:
 * - Messages that are not JSON objects, come on a topic with unusable keys, or answer no pending
 *   upgrade are recorded in `malformed` and get no answer. A JSON object with a usable id whose
 *   params are wrong (inform without a version string, a step outside the documented range) is
 *   recorded in `malformed` too and answered {id, code: 400, message, data: {}}.
 * - Nothing that arrives on the broker can make the service throw; failures while publishing
 *   are kept in `lastError`.
 * - The file endpoint answers GET and HEAD; one "bytes=" range per request (a-b, a-, -n) gets 206
 *   with Content-Range, an unsatisfiable one 416 with "bytes * /size" (no space); a Range it
 *   cannot read (several ranges, another unit) is ignored and the whole file sent (RFC 9110
 *   allows ignoring Range).
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { OtaError } from "../modules/errors.ts";
import { enosTopics } from "../modules/enos/client.ts";
import { compareVersions, parseVersion, type Version } from "../modules/verify/version.ts";
import type { BrokerPublish, StreamBroker } from "./aws-streams.ts";
import { BrokerListener } from "./broker-listener.ts";
import type { EnosIdentities } from "./enos-auth.ts";

export type EnosSignMethod = "md5" | "sha256";

export interface EnosFirmwareInput {
  version: string;
  file: Uint8Array;
  /** The last level of the fileUrl path; [A-Za-z0-9._-]{1,128}. Default "<version>.bin". */
  fileName?: string;
  signMethod?: EnosSignMethod;
  /**
   * How the offer names the file: "path" (default), a path on the file endpoint
   * ("/PK/ota/<fileName>"), as older EnOS offers do; "enos-connect", an
   * "enos-connect://ota/PK/<fileName>" URI, as newer EnOS does, that a device downloads through
   * the HTTP broker's `/multipart/sys/PK/DK/file/download` after logging in (`identities`).
   */
  uri?: "path" | "enos-connect";
}

/** A firmware entry as getversion lists it and an upgrade push carries it. */
export interface EnosFirmware {
  version: string;
  sign: string;
  signMethod: EnosSignMethod;
  fileUrl: string;
  fileSize: number;
}

export interface EnosInformRecord {
  id: unknown;
  method: unknown;
  version: string;
}

export interface EnosProgressRecord {
  id: unknown;
  method: unknown;
  /** The step as sent (a string by the documentation). */
  rawStep: unknown;
  step: number;
  desc: unknown;
}

/** A device message the service handled: `message` is the topic's last level (inform, progress, ...). */
export interface EnosActivity {
  productKey: string;
  deviceKey: string;
  message: string;
}

export interface EnosDeviceRecord {
  productKey: string;
  deviceKey: string;
  /** The version the device last informed. */
  version: string | undefined;
  informs: EnosInformRecord[];
  progress: EnosProgressRecord[];
  getVersionRequests: number;
  /** Each getversion request's id and method, in order. */
  getVersionLog: { id: unknown; method: unknown }[];
}

/**
 * A getversion answer set with `setGetVersionAnswer` instead of the catalog: a list sent as data
 * as it is, an error reply {code, message}, or "silent" for no answer at all.
 */
export type EnosGetVersionAnswer = unknown[] | { code: number; message: string } | "silent";

export interface EnosUpgradeReply {
  id: unknown;
  code: unknown;
  data?: unknown;
  message?: unknown;
}

export interface EnosMalformed {
  topic: string;
  payload: string;
  reason: string;
}

export interface EnosServiceOptions {
  /** QoS of what the service publishes; default 1. */
  qos?: 0 | 1;
  /** Device secrets and HTTP sessions: without them the endpoint has no /auth and no file download. */
  identities?: EnosIdentities;
}

export interface EnosFileEndpoint {
  /** http://127.0.0.1:<port>: the base a device resolves a relative fileUrl against. */
  origin: string;
  port: number;
  close(): Promise<void>;
}

export interface EnosFileRequest {
  method: string;
  path: string;
  range: string | undefined;
  status: number;
}

type Json = Record<string, unknown>;

const FILTERS = ["/sys/+/+/ota/device/inform", "/sys/+/+/ota/device/progress", "/sys/+/+/ota/device/getversion", "/sys/+/+/ota/device/upgrade_reply"];
const FILE_NAME = /^[A-Za-z0-9._-]{1,128}$/;

function isId(value: unknown): value is string | number {
  return (typeof value === "string" && value.length > 0 && value.length <= 64) || (typeof value === "number" && Number.isSafeInteger(value) && value >= 0);
}

function tryVersion(text: unknown): Version | undefined {
  if (typeof text !== "string") return undefined;
  try {
    return parseVersion(text);
  } catch {
    return undefined;
  }
}

export class EnosService {
  readonly #broker: StreamBroker;
  readonly #qos: 0 | 1;
  readonly #devices = new Map<string, EnosDeviceRecord>();
  /** Per product key: firmware by version. */
  readonly #firmware = new Map<string, Map<string, EnosFirmware & { parsed: Version }>>();
  /** fileUrl (path or enos-connect URI) -> bytes and the product they are offered to. */
  readonly #files = new Map<string, { bytes: Uint8Array; productKey: string }>();
  readonly #identities: EnosIdentities | undefined;
  readonly #waiting = new Map<string, { resolve: (reply: EnosUpgradeReply) => void; timer: NodeJS.Timeout }>();
  readonly #servers = new Set<Server>();
  readonly #answers = new Map<string, EnosGetVersionAnswer>();
  #nextId = 1;
  readonly malformed: EnosMalformed[] = [];
  readonly fileRequests: EnosFileRequest[] = [];
  readonly #listener: BrokerListener;
  /**
   * Called after each device message is handled (inform, progress, getversion, upgrade_reply,
   * malformed ones included): the dashboard (cloud/dashboard.ts) hears the device from it.
   */
  onActivity: ((activity: EnosActivity) => void) | undefined;

  constructor(broker: StreamBroker, options: EnosServiceOptions = {}) {
    this.#broker = broker;
    this.#listener = new BrokerListener(broker, FILTERS, async (topic, payload) => {
      try {
        await this.#handle(topic, payload.toString("utf8"));
      } finally {
        this.#tell(topic);
      }
    });
    this.#qos = options.qos ?? 1;
    this.#identities = options.identities;
  }

  start(): Promise<void> {
    return this.#listener.start();
  }

  /** The last failure while answering (e.g. a publish the broker refused). */
  get lastError(): unknown {
    return this.#listener.lastError;
  }

  /** Stops listening, answers what was received, drops pending pushes and closes file endpoints. */
  async stop(): Promise<void> {
    await this.#listener.stop();
    for (const w of this.#waiting.values()) clearTimeout(w.timer);
    this.#waiting.clear();
    await Promise.all([...this.#servers].map((s) => closeServer(s)));
    this.#servers.clear();
  }

  /** Resolves when every message received so far has been handled. */
  idle(): Promise<void> {
    return this.#listener.idle();
  }

  /** Ends every HTTP broker session (a broker restart): devices log in again. */
  endSessions(): void {
    this.#identities?.endSessions();
  }

  /** Offers firmware to every device of `productKey` (replacing an entry of the same version). */
  addFirmware(productKey: string, input: EnosFirmwareInput): EnosFirmware {
    enosTopics(productKey, "x"); // checks the product key
    if (typeof input !== "object" || input === null) throw new OtaError("bad-argument", "firmware must be an object");
    let parsed: Version;
    try {
      parsed = parseVersion(input.version);
    } catch (e) {
      throw new OtaError("bad-argument", `firmware version: ${(e as Error).message}`);
    }
    if (!(input.file instanceof Uint8Array) || input.file.length === 0) throw new OtaError("bad-argument", "firmware file must be a non-empty Uint8Array");
    const signMethod = input.signMethod ?? "md5";
    if (signMethod !== "md5" && signMethod !== "sha256") throw new OtaError("bad-argument", `sign method must be md5 or sha256, got ${String(signMethod)}`);
    const fileName = input.fileName ?? `${input.version}.bin`;
    if (!FILE_NAME.test(fileName)) throw new OtaError("bad-argument", `file name ${JSON.stringify(fileName)}: [A-Za-z0-9._-]{1,128}`);
    const file = new Uint8Array(input.file);
    const entry = {
      version: input.version,
      sign: createHash(signMethod).update(file).digest("hex"),
      signMethod,
      fileUrl: input.uri === "enos-connect" ? `enos-connect://ota/${encodeURIComponent(productKey)}/${fileName}` : `/${encodeURIComponent(productKey)}/ota/${fileName}`,
      fileSize: file.length,
      parsed,
    };
    let product = this.#firmware.get(productKey);
    if (!product) this.#firmware.set(productKey, (product = new Map()));
    const previous = product.get(input.version);
    if (previous) this.#files.delete(previous.fileUrl);
    const clash = [...product.values()].find((f) => f.fileUrl === entry.fileUrl && f.version !== input.version);
    if (clash) throw new OtaError("bad-argument", `file name ${fileName} is already used by version ${clash.version}`);
    product.set(input.version, entry);
    this.#files.set(entry.fileUrl, { bytes: file, productKey });
    return publicEntry(entry);
  }

  removeFirmware(productKey: string, version: string): boolean {
    const product = this.#firmware.get(productKey);
    const entry = product?.get(version);
    if (!product || !entry) return false;
    product.delete(version);
    this.#files.delete(entry.fileUrl);
    return true;
  }

  /** The firmware offered for a product, newest first. */
  firmware(productKey: string): EnosFirmware[] {
    return [...(this.#firmware.get(productKey)?.values() ?? [])].sort((a, b) => compareVersions(b.parsed, a.parsed)).map(publicEntry);
  }

  /** What getversion answers a device: the product's firmware newer than its informed version. */
  availableFor(productKey: string, deviceKey: string): EnosFirmware[] {
    const running = tryVersion(this.#devices.get(`${productKey}/${deviceKey}`)?.version);
    return [...(this.#firmware.get(productKey)?.values() ?? [])]
      .filter((f) => running === undefined || compareVersions(f.parsed, running) > 0)
      .sort((a, b) => compareVersions(b.parsed, a.parsed))
      .map(publicEntry);
  }

  /**
   * Answers this device's getversion with `answer` instead of the catalog (a cloud whose list is
   * stale or odd, one that fails or stays silent); undefined goes back to the catalog.
   */
  setGetVersionAnswer(productKey: string, deviceKey: string, answer: EnosGetVersionAnswer | undefined): void {
    const key = `${productKey}/${deviceKey}`;
    if (answer === undefined) this.#answers.delete(key);
    else this.#answers.set(key, answer);
  }

  device(productKey: string, deviceKey: string): EnosDeviceRecord | undefined {
    return this.#devices.get(`${productKey}/${deviceKey}`);
  }

  get devices(): EnosDeviceRecord[] {
    return [...this.#devices.values()];
  }

  /**
   * Pushes firmware `version` of the device's product as an upgrade request; resolves with the
   * device's upgrade_reply (matched by id), rejects when none comes within `timeoutMs` (5000).
   */
  async pushUpgrade(productKey: string, deviceKey: string, version: string, options: { timeoutMs?: number; id?: string | number } = {}): Promise<EnosUpgradeReply> {
    const topics = enosTopics(productKey, deviceKey);
    const entry = this.#firmware.get(productKey)?.get(version);
    if (!entry) throw new OtaError("bad-argument", `no firmware ${version} for product ${productKey}`);
    if (options.id !== undefined && !isId(options.id)) throw new OtaError("bad-argument", `upgrade id ${JSON.stringify(options.id)}`);
    const id = options.id ?? String(this.#nextId++);
    const key = `${productKey}/${deviceKey}/${id}`;
    const timeoutMs = options.timeoutMs ?? 5000;
    const reply = new Promise<EnosUpgradeReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(key);
        reject(new OtaError("timeout", `no upgrade_reply to ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(key, { resolve, timer });
    });
    try {
      await this.#publish(topics.upgrade, { id, version: "1.0", method: "ota.device.upgrade", params: publicEntry(entry) });
    } catch (e) {
      const w = this.#waiting.get(key);
      if (w) clearTimeout(w.timer);
      this.#waiting.delete(key);
      reply.catch(() => undefined);
      throw e;
    }
    return reply;
  }

  /**
   * Starts an HTTP endpoint on 127.0.0.1: the firmware files at their fileUrl paths (GET, HEAD)
   * and, with `identities`, the HTTP broker's device login (`POST /auth/PK/DK`) and file download
   * (`GET /multipart/sys/PK/DK/file/download?sessionId=..&fileUri=..&category=ota`, Range as
   * below; a missing or expired session 401, a file not offered to the device's product 404).
   */
  async startFiles(options: { port?: number } = {}): Promise<EnosFileEndpoint> {
    const server = createServer((req, res) => this.#serve(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#servers.add(server);
    const port = (server.address() as AddressInfo).port;
    return {
      origin: `http://127.0.0.1:${port}`,
      port,
      close: async () => {
        if (this.#servers.delete(server)) await closeServer(server);
      },
    };
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    const rangeHeader = req.headers.range;
    const answer = (status: number, headers: Record<string, string | number>, body?: Uint8Array) => {
      this.fileRequests.push({ method, path, range: rangeHeader, status });
      res.writeHead(status, headers);
      res.end(method === "HEAD" || body === undefined ? undefined : body);
    };
    const json = (status: number, message: string, data: Json = {}) => {
      const body = Buffer.from(JSON.stringify({ code: status, message, data }), "utf8");
      answer(status, { "content-type": "application/json", "content-length": body.length }, body);
    };
    const auth = /^\/auth\/([^/]+)\/([^/]+)$/.exec(path);
    if (auth && this.#identities) {
      if (method !== "POST") return answer(405, { allow: "POST", "content-length": 0 });
      const identities = this.#identities;
      void readSmallBody(req).then((text) => {
        let body: unknown;
        try {
          body = JSON.parse(text ?? "");
        } catch {
          return json(400, text === undefined ? "the body is larger than 4 KB" : "the body is not JSON");
        }
        const r = identities.httpLogin(decodeURIComponent(auth[1] ?? ""), decodeURIComponent(auth[2] ?? ""), body);
        if ("sessionId" in r) json(200, "", { sessionId: r.sessionId });
        else json(r.status, r.reason);
      });
      return;
    }
    if (method !== "GET" && method !== "HEAD") return answer(405, { allow: "GET, HEAD", "content-length": 0 });
    let file: Uint8Array | undefined;
    const download = /^\/multipart\/sys\/([^/]+)\/([^/]+)\/file\/download$/.exec(path);
    if (download && this.#identities) {
      const [productKey, deviceKey] = [decodeURIComponent(download[1] ?? ""), decodeURIComponent(download[2] ?? "")];
      const refused = this.#identities.useSession(url.searchParams.get("sessionId"), productKey, deviceKey);
      if (refused !== undefined) return json(401, refused);
      if (url.searchParams.get("category") !== "ota") return json(400, `category ${JSON.stringify(url.searchParams.get("category"))}: this endpoint serves ota files`);
      const offered = this.#files.get(url.searchParams.get("fileUri") ?? "");
      if (!offered || offered.productKey !== productKey) return json(404, `no OTA file ${JSON.stringify(url.searchParams.get("fileUri"))} for product ${productKey}`);
      file = offered.bytes;
    } else {
      const offered = path.startsWith("/") ? this.#files.get(path) : undefined;
      file = offered?.bytes;
    }
    if (!file) return answer(404, { "content-length": 0 });
    const base = { "accept-ranges": "bytes", "content-type": "application/octet-stream" };
    const range = parseRange(rangeHeader, file.length);
    if (range === "unsatisfiable") return answer(416, { ...base, "content-range": `bytes */${file.length}`, "content-length": 0 });
    if (range === undefined) return answer(200, { ...base, "content-length": file.length }, file);
    const [start, end] = range;
    return answer(206, { ...base, "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${file.length}` }, file.subarray(start, end + 1));
  }

  #tell(topic: string): void {
    const [, , productKey = "", deviceKey = "", , , message = ""] = topic.split("/");
    try {
      this.onActivity?.({ productKey, deviceKey, message });
    } catch {
      // The listener's failure is its own: the device's messages are handled all the same.
    }
  }

  #device(productKey: string, deviceKey: string): EnosDeviceRecord {
    const key = `${productKey}/${deviceKey}`;
    let d = this.#devices.get(key);
    if (!d) this.#devices.set(key, (d = { productKey, deviceKey, version: undefined, informs: [], progress: [], getVersionRequests: 0, getVersionLog: [] }));
    return d;
  }

  async #handle(topic: string, payload: string): Promise<void> {
    const levels = topic.split("/");
    const [, , productKey = "", deviceKey = "", , , name = ""] = levels;
    const bad = (reason: string) => void this.malformed.push({ topic, payload, reason });
    try {
      enosTopics(productKey, deviceKey);
    } catch (e) {
      return bad((e as Error).message);
    }
    if (levels.length !== 7) return bad("not an EnOS OTA topic");
    let message: unknown;
    try {
      message = JSON.parse(payload);
    } catch {
      return bad("not JSON");
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) return bad("not a JSON object");
    const m = message as Json;
    const id = m["id"];
    const params = typeof m["params"] === "object" && m["params"] !== null && !Array.isArray(m["params"]) ? (m["params"] as Json) : undefined;
    const replyTopic = `${topic}_reply`;
    const refuse = async (reason: string) => {
      bad(reason);
      if (isId(id)) await this.#publish(replyTopic, { id, code: 400, message: reason, data: {} });
    };
    if (name === "upgrade_reply") {
      const key = `${productKey}/${deviceKey}/${String(id)}`;
      const waiting = this.#waiting.get(key);
      if (!waiting) return bad("reply to no pending upgrade");
      this.#waiting.delete(key);
      clearTimeout(waiting.timer);
      const reply: EnosUpgradeReply = { id, code: m["code"] };
      if ("data" in m) reply.data = m["data"];
      if ("message" in m) reply.message = m["message"];
      waiting.resolve(reply);
      return;
    }
    if (!isId(id)) return bad(`${name} without a usable id`);
    switch (name) {
      case "inform": {
        const version = params?.["version"];
        if (typeof version !== "string" || version.length === 0 || version.length > 64) return refuse("inform without a version string");
        const d = this.#device(productKey, deviceKey);
        d.informs.push({ id, method: m["method"], version });
        d.version = version;
        return this.#publish(replyTopic, { id, code: 200, data: {} });
      }
      case "progress": {
        const raw = params?.["step"];
        const step = typeof raw === "string" && /^-?[0-9]{1,3}$/.test(raw) ? Number(raw) : typeof raw === "number" ? raw : NaN;
        if (!Number.isInteger(step) || step < -4 || step > 100) return refuse(`progress step ${JSON.stringify(raw) ?? "missing"}: 0 to 100, or -1 to -4`);
        this.#device(productKey, deviceKey).progress.push({ id, method: m["method"], rawStep: raw, step, desc: params?.["desc"] });
        return this.#publish(replyTopic, { id, code: 200, data: {} });
      }
      case "getversion": {
        const d = this.#device(productKey, deviceKey);
        d.getVersionRequests++;
        d.getVersionLog.push({ id, method: m["method"] });
        const answer = this.#answers.get(`${productKey}/${deviceKey}`);
        if (answer === "silent") return;
        if (answer !== undefined && !Array.isArray(answer)) return this.#publish(replyTopic, { id, code: answer.code, message: answer.message, data: {} });
        return this.#publish(replyTopic, { id, code: 200, data: answer ?? this.availableFor(productKey, deviceKey) });
      }
      default:
        return bad(`not a request the service answers: ${name}`);
    }
  }

  #publish(topic: string, message: Json): Promise<void> {
    const packet: BrokerPublish = { cmd: "publish", topic, payload: Buffer.from(JSON.stringify(message), "utf8"), qos: this.#qos, retain: false, dup: false };
    return new Promise<void>((resolve, reject) => this.#broker.publish(packet, (error) => (error ? reject(error) : resolve())));
  }
}

function publicEntry(f: EnosFirmware): EnosFirmware {
  return { version: f.version, sign: f.sign, signMethod: f.signMethod, fileUrl: f.fileUrl, fileSize: f.fileSize };
}

/** One "bytes=" range: [first, last] inclusive, "unsatisfiable", or undefined (serve it all). */
export function parseRange(header: string | undefined, size: number): [number, number] | "unsatisfiable" | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? Infinity : Number(m[2]);
  if (end < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return [start, Math.min(end, size - 1)];
}

/** A request body of at most 4 KB as text; undefined when it is longer. */
async function readSmallBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req) {
    length += (chunk as Buffer).length;
    if (length > 4096) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
