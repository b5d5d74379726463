/**
 * EnOS device OTA over MQTT, the device side: topics, request builders, an envelope parser that
 * never throws, and `EnosOtaClient`. The upgrade push's `params` are not read here: the raw
 * payload goes to whoever registered with `onUpgrade` (documents.ts'
 * parseEnosUpgrade checks them).
 *
 * ## Protocol facts (and where they come from)
 *
 * Sources:
 *  [D] EnOS documentation "Developing OTA Capabilities on Devices" (EnOS device OTA guide,
 *      English and Chinese editions; the same text is in EnvisionIot's public docs sources).
 *  [J] github.com/EnvisionIot/enos-mqtt-sdk-java: core/internals/constants/MethodConstants.java,
 *      ArrivedTopicPattern.java, DeliveryTopicFormat.java, message/upstream/ota/*,
 *      message/downstream/ota/OtaUpgradeReply.java.
 *  [P] github.com/EnvisionIot/enos-device-sdk-python: enos/core/constant/MethodConstants.py,
 *      DeliveryTopicFormat.py, message/upstream/ota/*.
 *
 * Topics for product key PK and device key DK [D][J][P]:
 *   device publishes  /sys/PK/DK/ota/device/inform       (+ _reply)  current firmware version
 *                     /sys/PK/DK/ota/device/progress     (+ _reply)  upgrade progress
 *                     /sys/PK/DK/ota/device/getversion   (+ _reply)  "which versions may I install"
 *   cloud publishes   /sys/PK/DK/ota/device/upgrade                  upgrade push; the device answers
 *                     on /sys/PK/DK/ota/device/upgrade_reply
 * Requests [D]: {"id":"123","version":"1.0","method":...,"params":{...}}. `id` is documented as a
 * Long, "optional", and written as a string in every example; `version` is the protocol version
 * "1.0". Replies [D]: {"id":"123","code":200,"data":...}; 200 means success. The Java SDK's reply
 * builder also carries a `message` and sends `data` as "" for the upgrade reply [J].
 *   inform    params {version}                                   method "ota.device.inform" [D]
 *   progress  params {step, desc}: step is a STRING [D][J][P]; its normal range is [0, 100] percent;
 *             -1 upgrade failed, -2 download failed, -3 verification failed, -4 flash ("burning")
 *             failed; desc may carry the error [D].                method "ota.device.progress" [D]
 *   getversion params {}; reply data is a list of {version, sign, signMethod, fileUrl, fileSize}
 *                                                                method "ota.device.getversion" [D]
 *   upgrade   params {version, sign, signMethod ("md5"), fileUrl (may be a path, e.g.
 *             "/1b30e0ea83002000/ota/kadak13"), fileSize}            method "ota.device.upgrade" [D]
 * Method strings differ between sources: the SDKs send "ota.inform", "ota.progress",
 * "ota.request" [J][P] and "Ota.device.getversion" [P]. This module sends the documented ones by
 * default (`methods` overrides them) and never dispatches on a received method, only on topics.
 * A successful upgrade is reported by informing the new version [D]; the Java sample reports
 * progress, then informs the version it installed [D].
 *
 * ## Choices where EnOS says nothing
 * - Ids this module makes are decimal strings from a random start, counting up (so a late reply
 *   to a previous boot's request is unlikely to match). Replies echo the request's id as it came
 *   (string or number).
 * - A reply whose `code` is not an integer, or a push without a usable id (a non-empty string or a
 *   non-negative integer), is "unknown": the device cannot answer a push it cannot name.
 * - The upgrade reply's data is {} (the documented example), with `message` only when given.
 */
import { OtaError } from "../errors.ts";
import type { Clock, TimerId } from "../ports/clock.ts";
import type { Mqtt, QoS } from "../ports/mqtt.ts";
import { requestSettings } from "../jobs/client-options.ts";
import { readJsonObject } from "../jobs/json-object.ts";

export type EnosId = string | number;

export interface EnosTopics {
  inform: string;
  informReply: string;
  progress: string;
  progressReply: string;
  getVersion: string;
  getVersionReply: string;
  upgrade: string;
  upgradeReply: string;
}

export interface EnosMethods {
  inform: string;
  progress: string;
  getVersion: string;
  upgrade: string;
}

/** The method strings of the EnOS documentation. */
export const ENOS_METHODS: EnosMethods = Object.freeze({
  inform: "ota.device.inform",
  progress: "ota.device.progress",
  getVersion: "ota.device.getversion",
  upgrade: "ota.device.upgrade",
});

export const ENOS_PROTOCOL_VERSION = "1.0";
export const ENOS_SUCCESS = 200;

/** Progress steps with a meaning other than a percentage. */
export const ENOS_STEP = Object.freeze({
  upgradeFailed: -1,
  downloadFailed: -2,
  verificationFailed: -3,
  flashFailed: -4,
} as const);

// RegExps are made per call, never kept at module level: in flash (preload) a RegExp has no
// match data, and Moddable's XS (8.2.3) crashes in exec's temporary copy once a collection runs.
const KEY = () => /^[^/+#\u0000]{1,128}$/;

function checkKey(value: unknown, what: string): string {
  if (typeof value !== "string" || !KEY().test(value)) throw new OtaError("bad-argument", `${what} must be 1 to 128 characters without '/', '+', '#'`);
  return value;
}

export function enosTopics(productKey: string, deviceKey: string): EnosTopics {
  const base = `/sys/${checkKey(productKey, "product key")}/${checkKey(deviceKey, "device key")}/ota/device`;
  return {
    inform: `${base}/inform`,
    informReply: `${base}/inform_reply`,
    progress: `${base}/progress`,
    progressReply: `${base}/progress_reply`,
    getVersion: `${base}/getversion`,
    getVersionReply: `${base}/getversion_reply`,
    upgrade: `${base}/upgrade`,
    upgradeReply: `${base}/upgrade_reply`,
  };
}

function isId(value: unknown): value is EnosId {
  return (typeof value === "string" && value.length > 0 && value.length <= 64) || (typeof value === "number" && Number.isSafeInteger(value) && value >= 0);
}

function checkId(value: unknown): EnosId {
  if (!isId(value)) throw new OtaError("bad-argument", "message id must be a string of 1 to 64 characters or a non-negative integer");
  return value;
}

function checkMethod(value: unknown): string {
  if (typeof value !== "string" || value.length === 0) throw new OtaError("bad-argument", "method must be a non-empty string");
  return value;
}

/** The request envelope {id, version:"1.0", method, params}. */
export function enosRequest(id: EnosId, method: string, params: Record<string, unknown>): string {
  return JSON.stringify({ id: checkId(id), version: ENOS_PROTOCOL_VERSION, method: checkMethod(method), params });
}

/** inform: params {version}. */
export function enosInformRequest(id: EnosId, version: string, method = ENOS_METHODS.inform): string {
  if (typeof version !== "string" || version.length === 0) throw new OtaError("bad-argument", "version must be a non-empty string");
  return enosRequest(id, method, { version });
}

/** progress: params {step, desc}, step as a decimal string; 0..100 or -1..-4 (ENOS_STEP). */
export function enosProgressRequest(id: EnosId, step: number, desc: string, method = ENOS_METHODS.progress): string {
  if (!Number.isInteger(step) || step < -4 || step > 100) throw new OtaError("bad-argument", `progress step ${step}: 0 to 100, or -1 to -4`);
  if (typeof desc !== "string") throw new OtaError("bad-argument", "desc must be a string");
  return enosRequest(id, method, { step: String(step), desc });
}

/** getversion: params {}. */
export function enosGetVersionRequest(id: EnosId, method = ENOS_METHODS.getVersion): string {
  return enosRequest(id, method, {});
}

/** A reply {id, code, data: {}, message?} (the device's answer to an upgrade push). */
export function enosReply(id: EnosId, code: number, message?: string): string {
  if (!Number.isInteger(code)) throw new OtaError("bad-argument", "code must be an integer");
  const out: Record<string, unknown> = { id: checkId(id), code, data: {} };
  if (message !== undefined) {
    if (typeof message !== "string") throw new OtaError("bad-argument", "message must be a string");
    out["message"] = message;
  }
  return JSON.stringify(out);
}

export type EnosOperation = "inform" | "progress" | "getversion" | "upgrade";

export type EnosMessage =
  | {
      kind: "upgrade";
      productKey: string;
      deviceKey: string;
      id: EnosId;
      method: string | undefined;
      /** The envelope's params as sent, unchecked. */
      params: unknown;
    }
  | {
      kind: "reply";
      /** Which request this replies to (by topic). */
      operation: EnosOperation;
      productKey: string;
      deviceKey: string;
      id: EnosId | undefined;
      code: number;
      data: unknown;
      message: string | undefined;
    }
  | { kind: "unknown"; reason: string };

const REPLIES: Record<string, EnosOperation> = Object.freeze({
  inform_reply: "inform",
  progress_reply: "progress",
  getversion_reply: "getversion",
  upgrade_reply: "upgrade",
});


/**
 * Classifies a message on an EnOS OTA topic: an upgrade push (envelope only) or a reply to one
 * of the device's requests (or to an upgrade, as the cloud sees it). Never throws.
 */
export function parseEnosMessage(topic: string, payload: Uint8Array | string): EnosMessage {
  if (typeof topic !== "string") return { kind: "unknown", reason: "topic is not a string" };
  const levels = topic.split("/");
  // /sys/PK/DK/ota/device/<name>: 7 levels counting the empty one before the first '/'.
  if (levels.length !== 7 || levels[0] !== "" || levels[1] !== "sys" || levels[4] !== "ota" || levels[5] !== "device") {
    return { kind: "unknown", reason: `not an EnOS OTA topic: ${topic}` };
  }
  const productKey = levels[2];
  const deviceKey = levels[3];
  if (!KEY().test(productKey) || !KEY().test(deviceKey)) return { kind: "unknown", reason: `bad product or device key in ${topic}` };
  const name = levels[6];
  if (name !== "upgrade" && REPLIES[name] === undefined) return { kind: "unknown", reason: `not a message for the device: ${topic}` };
  const o = readJsonObject(payload);
  if (typeof o === "string") return { kind: "unknown", reason: o };
  const id = o["id"];
  if (name === "upgrade") {
    if (!isId(id)) return { kind: "unknown", reason: "upgrade push without a usable id" };
    const method = typeof o["method"] === "string" ? o["method"] : undefined;
    return { kind: "upgrade", productKey, deviceKey, id, method, params: o["params"] };
  }
  const code = o["code"];
  if (typeof code !== "number" || !Number.isInteger(code)) return { kind: "unknown", reason: `${name} without an integer code` };
  if (id !== undefined && !isId(id)) return { kind: "unknown", reason: `${name} with an unusable id` };
  const message = o["message"];
  return {
    kind: "reply",
    operation: REPLIES[name],
    productKey,
    deviceKey,
    id,
    code,
    data: o["data"],
    message: typeof message === "string" ? message : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// Client

export interface EnosOtaClientOptions {
  mqtt: Mqtt;
  clock: Clock;
  productKey: string;
  deviceKey: string;
  /** Milliseconds to wait for a getversion reply; default 10000. */
  timeoutMs?: number;
  /** QoS of subscriptions and publishes; default 1. */
  qos?: QoS;
  /** Method strings to send instead of the documented ones. */
  methods?: Partial<EnosMethods>;
}

interface PendingVersions {
  id: string;
  timer: TimerId;
  resolve(list: unknown[]): void;
  reject(e: unknown): void;
}

/**
 * The device's EnOS OTA session. Wire `mqtt.onMessage` to `handle`; call `start()` after every
 * (re)connect that lost the session.
 *
 * - `inform`, `progress` and `reply` resolve once published (PUBACK at QoS 1), like the SDKs'
 *   fastPublish; their replies, when the cloud sends them, are consumed by `handle` and kept in
 *   `lastReply`.
 * - `getVersions` resolves with the reply's `data` list; it rejects with OtaError "timeout" when
 *   no reply came in time, "http-status" when the reply's code is not 200 (code and message in the
 *   error's message), "malformed" when data is not a list.
 * - `onUpgrade` handlers get the push's raw payload and its id, to check with parseEnosUpgrade
 *   and answer with `reply(id, code, message)`.
 */
export class EnosOtaClient {
  readonly topics: EnosTopics;
  readonly productKey: string;
  readonly deviceKey: string;
  readonly #mqtt: Mqtt;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #qos: QoS;
  readonly #methods: EnosMethods;
  readonly #handlers: ((payload: Uint8Array, id: EnosId) => void)[] = [];
  #pending: PendingVersions[] = [];
  #nextId: number;
  /** The last reply to inform, progress or upgrade seen, for diagnostics. */
  lastReply: Extract<EnosMessage, { kind: "reply" }> | undefined;
  /** Messages on this device's OTA topics that were malformed or answered nothing pending. */
  ignored = 0;
  lastIgnored: string | undefined;

  constructor(options: EnosOtaClientOptions) {
    this.topics = enosTopics(options.productKey, options.deviceKey);
    this.productKey = options.productKey;
    this.deviceKey = options.deviceKey;
    this.#mqtt = options.mqtt;
    this.#clock = options.clock;
    const settings = requestSettings(options);
    this.#timeoutMs = settings.timeoutMs;
    this.#qos = settings.qos;
    this.#methods = { ...ENOS_METHODS, ...options.methods };
    for (const m of Object.values(this.#methods)) checkMethod(m);
    this.#nextId = 1 + Math.floor(Math.random() * 1_000_000_000);
  }

  /** Subscribes to upgrade pushes and to the replies of the device's requests. */
  async start(): Promise<void> {
    const t = this.topics;
    for (const topic of [t.upgrade, t.getVersionReply, t.informReply, t.progressReply]) await this.#mqtt.subscribe(topic, this.#qos);
  }

  onUpgrade(handler: (payload: Uint8Array, id: EnosId) => void): void {
    this.#handlers.push(handler);
  }

  #id(): string {
    const id = this.#nextId;
    this.#nextId = id >= 9_000_000_000_000 ? 1 : id + 1;
    return String(id);
  }

  /** Reports the running firmware version (after connecting, and after an update as success). */
  async inform(version: string): Promise<void> {
    return this.#publish(this.topics.inform, enosInformRequest(this.#id(), version, this.#methods.inform));
  }

  /** Reports progress: 0..100 percent, or ENOS_STEP's failures with the reason in `desc`. */
  async progress(step: number, desc: string): Promise<void> {
    return this.#publish(this.topics.progress, enosProgressRequest(this.#id(), step, desc, this.#methods.progress));
  }

  /** Answers an upgrade push (`code` 200 when the device takes the upgrade). */
  async reply(id: EnosId, code: number, message?: string): Promise<void> {
    return this.#publish(this.topics.upgradeReply, enosReply(id, code, message));
  }

  /** Asks which versions the device may install; resolves with the reply's data list. */
  getVersions(options: { timeoutMs?: number } = {}): Promise<unknown[]> {
    const timeout = options.timeoutMs ?? this.#timeoutMs;
    if (!Number.isFinite(timeout) || timeout <= 0) return Promise.reject(new OtaError("bad-argument", "timeoutMs must be a positive number"));
    const id = this.#id();
    let entry: PendingVersions | undefined;
    const answer = new Promise<unknown[]>((resolve, reject) => {
      const e: PendingVersions = {
        id,
        resolve,
        reject,
        timer: this.#clock.setTimer(timeout, () => {
          if (this.#remove(e)) reject(new OtaError("timeout", `no getversion reply within ${timeout} ms`));
        }),
      };
      entry = e;
      this.#pending.push(e);
    });
    const failed = (e: unknown) => {
      if (entry !== undefined && this.#remove(entry)) entry.reject(e);
    };
    try {
      this.#mqtt.publish(this.topics.getVersion, enosGetVersionRequest(id, this.#methods.getVersion), this.#qos).then(undefined, failed);
    } catch (e) {
      failed(e);
    }
    return answer;
  }

  /** Requests still waiting for a reply. */
  get pending(): number {
    return this.#pending.length;
  }

  /** Routes a message; true when it was on one of this device's OTA topics. */
  handle(topic: string, payload: Uint8Array): boolean {
    const t = this.topics;
    if (topic !== t.upgrade && topic !== t.getVersionReply && topic !== t.informReply && topic !== t.progressReply && topic !== t.upgradeReply) {
      return false;
    }
    const m = parseEnosMessage(topic, payload);
    if (m.kind === "unknown") return this.#ignore(m.reason);
    if (m.kind === "upgrade") {
      for (const handler of this.#handlers) handler(payload, m.id);
      return true;
    }
    if (m.operation !== "getversion") {
      this.lastReply = m;
      return true;
    }
    const entry = m.id !== undefined ? this.#pending.find((p) => p.id === String(m.id)) : this.#pending[0];
    if (entry === undefined) return this.#ignore(`getversion reply ${String(m.id)} answers no pending request`);
    this.#remove(entry);
    if (m.code !== ENOS_SUCCESS) {
      entry.reject(new OtaError("http-status", `getversion reply code ${m.code}${m.message ? `: ${m.message}` : ""}`));
    } else if (!Array.isArray(m.data)) {
      entry.reject(new OtaError("malformed", "getversion reply data is not a list"));
    } else {
      entry.resolve(m.data);
    }
    return true;
  }

  #publish(topic: string, payload: string): Promise<void> {
    return this.#mqtt.publish(topic, payload, this.#qos);
  }

  #remove(entry: PendingVersions): boolean {
    const i = this.#pending.indexOf(entry);
    if (i < 0) return false;
    this.#pending.splice(i, 1);
    this.#clock.clearTimer(entry.timer);
    return true;
  }

  #ignore(reason: string): true {
    this.ignored++;
    this.lastIgnored = reason;
    return true;
  }
}
