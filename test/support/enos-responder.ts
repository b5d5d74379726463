/**
 * A minimal EnOS OTA cloud for tests (Node only), on an in-process broker (aedes, or anything with
 * StreamBroker's three methods). See modules/jobs/enos.ts for the protocol facts and sources.
 *
 * - Records every inform and progress request (any method string: the SDKs and the documentation
 *   disagree) and answers each on its `_reply` topic with {id, code: 200, data: {}}.
 * - Answers getversion with {id, code: 200, data: <the list configured for the device>} (an empty
 *   list when none is), or with the configured error {id, code, message}.
 * - `pushUpgrade` publishes {id, version: "1.0", method: "ota.device.upgrade", params} on the
 *   device's upgrade topic and resolves with the device's reply on upgrade_reply (matched by id).
 * Malformed messages are recorded in `malformed` and never throw out of the responder.
 */
import type { BrokerPacket, BrokerPublish, StreamBroker } from "../../cloud/aws-streams.ts";

export interface EnosInform {
  productKey: string;
  deviceKey: string;
  id: unknown;
  method: unknown;
  version: unknown;
}

export interface EnosProgress {
  productKey: string;
  deviceKey: string;
  id: unknown;
  method: unknown;
  step: unknown;
  desc: unknown;
}

export interface EnosReplyMessage {
  id: unknown;
  code: unknown;
  data?: unknown;
  message?: unknown;
}

type Json = Record<string, unknown>;

const FILTERS = ["/sys/+/+/ota/device/inform", "/sys/+/+/ota/device/progress", "/sys/+/+/ota/device/getversion", "/sys/+/+/ota/device/upgrade_reply"];

export class EnosResponder {
  readonly #broker: StreamBroker;
  readonly #versions = new Map<string, unknown[] | { code: number; message: string }>();
  readonly #waiting = new Map<string, { resolve: (reply: EnosReplyMessage) => void; timer: NodeJS.Timeout }>();
  #queue: Promise<void> = Promise.resolve();
  #started = false;
  #nextId = 1000;
  readonly informs: EnosInform[] = [];
  readonly progress: EnosProgress[] = [];
  readonly getVersionRequests: { productKey: string; deviceKey: string; id: unknown; method: unknown }[] = [];
  readonly malformed: { topic: string; payload: string; reason: string }[] = [];
  /** When true, getversion requests get no reply (to test timeouts). */
  dropGetVersion = false;
  lastError: unknown;

  readonly #deliver = (packet: BrokerPacket, done: () => void): void => {
    const payload = typeof packet.payload === "string" ? packet.payload : Buffer.from(packet.payload).toString("utf8");
    const topic = packet.topic;
    this.#queue = this.#queue
      .then(() => this.#handle(topic, payload))
      .catch((e: unknown) => {
        this.lastError = e;
      });
    done();
  };

  constructor(broker: StreamBroker) {
    this.#broker = broker;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    for (const f of FILTERS) await new Promise<void>((resolve) => this.#broker.subscribe(f, this.#deliver, resolve));
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    for (const f of FILTERS) await new Promise<void>((resolve) => this.#broker.unsubscribe(f, this.#deliver, resolve));
    await this.idle();
    for (const w of this.#waiting.values()) clearTimeout(w.timer);
    this.#waiting.clear();
  }

  async idle(): Promise<void> {
    let seen: Promise<void>;
    do {
      seen = this.#queue;
      await seen;
    } while (seen !== this.#queue);
  }

  /** What getversion answers for this device: a list of firmware entries, or an error reply. */
  setVersions(productKey: string, deviceKey: string, answer: unknown[] | { code: number; message: string }): void {
    this.#versions.set(`${productKey}/${deviceKey}`, answer);
  }

  /**
   * Pushes an upgrade request; resolves with the device's reply, or rejects when none comes
   * within `timeoutMs` (default 5000).
   */
  async pushUpgrade(productKey: string, deviceKey: string, params: unknown, options: { id?: string | number; timeoutMs?: number } = {}): Promise<EnosReplyMessage> {
    const id = options.id ?? String(this.#nextId++);
    const key = `${productKey}/${deviceKey}/${String(id)}`;
    const reply = new Promise<EnosReplyMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(key);
        reject(new Error(`no upgrade_reply to ${String(id)} within ${options.timeoutMs ?? 5000} ms`));
      }, options.timeoutMs ?? 5000);
      this.#waiting.set(key, { resolve, timer });
    });
    await this.#publish(`/sys/${productKey}/${deviceKey}/ota/device/upgrade`, { id, version: "1.0", method: "ota.device.upgrade", params });
    return reply;
  }

  async #handle(topic: string, payload: string): Promise<void> {
    const [, , productKey = "", deviceKey = "", , , name = ""] = topic.split("/");
    let message: unknown;
    try {
      message = JSON.parse(payload);
    } catch {
      this.malformed.push({ topic, payload, reason: "not JSON" });
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      this.malformed.push({ topic, payload, reason: "not a JSON object" });
      return;
    }
    const m = message as Json;
    const params = typeof m["params"] === "object" && m["params"] !== null ? (m["params"] as Json) : {};
    const replyTopic = `${topic}_reply`;
    switch (name) {
      case "inform":
        this.informs.push({ productKey, deviceKey, id: m["id"], method: m["method"], version: params["version"] });
        await this.#publish(replyTopic, { id: m["id"], code: 200, data: {} });
        return;
      case "progress":
        this.progress.push({ productKey, deviceKey, id: m["id"], method: m["method"], step: params["step"], desc: params["desc"] });
        await this.#publish(replyTopic, { id: m["id"], code: 200, data: {} });
        return;
      case "getversion": {
        this.getVersionRequests.push({ productKey, deviceKey, id: m["id"], method: m["method"] });
        if (this.dropGetVersion) return;
        const answer = this.#versions.get(`${productKey}/${deviceKey}`) ?? [];
        if (Array.isArray(answer)) await this.#publish(replyTopic, { id: m["id"], code: 200, data: answer });
        else await this.#publish(replyTopic, { id: m["id"], code: answer.code, message: answer.message, data: {} });
        return;
      }
      case "upgrade_reply": {
        const key = `${productKey}/${deviceKey}/${String(m["id"])}`;
        const waiting = this.#waiting.get(key);
        if (!waiting) {
          this.malformed.push({ topic, payload, reason: "reply to no pending upgrade" });
          return;
        }
        this.#waiting.delete(key);
        clearTimeout(waiting.timer);
        const reply: EnosReplyMessage = { id: m["id"], code: m["code"] };
        if ("data" in m) reply.data = m["data"];
        if ("message" in m) reply.message = m["message"];
        waiting.resolve(reply);
        return;
      }
    }
  }

  #publish(topic: string, message: Json): Promise<void> {
    const packet: BrokerPublish = { cmd: "publish", topic, payload: Buffer.from(JSON.stringify(message), "utf8"), qos: 1, retain: false, dup: false };
    return new Promise<void>((resolve, reject) => this.#broker.publish(packet, (error) => (error ? reject(error) : resolve())));
  }
}
