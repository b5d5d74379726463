/**
 * The simulator's bridge, Node side: serves the calls of one XS machine (hosts/sim/xs/bridge.ts)
 * with the board's hardware, and queues what happens meanwhile (timers due, MQTT messages,
 * connection changes) until XS is idle and takes it. One BridgeHost per boot: `close()` at a
 * reset drops its timers and open responses, as a chip reset would.
 */
import type { Flash } from "../../modules/ports/flash.ts";
import type { StateStore } from "../../modules/ports/state-store.ts";
import type { Http, HttpRequest, HttpResponse } from "../../modules/ports/http.ts";
import type { Mqtt, QoS } from "../../modules/ports/mqtt.ts";
import type { Digest, DigestAlgorithm } from "../../modules/ports/digest.ts";
import { OtaError, isOtaError } from "../../modules/errors.ts";
import { nodeDigests } from "./node-digest.ts";
import { NodeResponse } from "./http.ts";
import { frame, unframe, RAW_MIN, type BridgeEvent } from "./xs/bridge.ts";
import type { HostCall } from "./xsnap.ts";
import type { SimIdentity } from "./xs/host.ts";
import { FlashStall, eraseCost, writeCost, type FlashTiming } from "./flash-timing.ts";

/** What the firmware asked of the hardware, for benches that time it (performance.now(): `start` when asked, `at` when it completed). */
export type HardwareTrace =
  | { kind: "flash.write" | "flash.erase"; offset: number; length: number; start: number; at: number }
  | { kind: "http.request"; url: string; at: number }
  | { kind: "mqtt.publish"; topic: string; at: number }
  | { kind: "state.set"; key: string; at: number };

export interface BridgeHardware {
  flash: Flash;
  store: StateStore;
  http: Http;
  /** The device's MQTT session; undefined until it is up. */
  mqtt: Mqtt | undefined;
  identity: SimIdentity;
  log(level: string, message: string): void;
  /** The firmware asked for a reset; the call that asked never returns. */
  restart(): void;
  /** Events are waiting and XS is idle: run its pump. */
  wake(): void;
  /** Erase and program times: each flash call returns only once the chip would be done. */
  flashTiming?: FlashTiming;
  trace?: (event: HardwareTrace) => void;
}

const LEVELS = new Set(["debug", "info", "warn", "error"]);

/** What a bridge call answers: its header, and bytes that go back raw when they are large. */
export interface Reply {
  json: Record<string, unknown>;
  bytes?: Uint8Array;
}

const reply = (json: Record<string, unknown>, bytes?: Uint8Array): Reply => ({ json, bytes });

/**
 * The Node side of the bridge's framing (hosts/sim/xs/bridge.ts): a call whose bytes come raw is
 * answered "send" and completed by the next message; a reply with large bytes says "raw" and the
 * next (empty) message takes them. An OtaError becomes an error reply, anything else a host error.
 */
export function framedHostCall(handle: (json: Record<string, unknown>, bytes: Uint8Array) => Promise<Reply>): HostCall {
  let waitingFor: Record<string, unknown> | undefined;
  let outgoing: Uint8Array | undefined;
  const run = async (json: Record<string, unknown>, bytes: Uint8Array): Promise<Uint8Array> => {
    try {
      const r = await handle(json, bytes);
      if (r.bytes && r.bytes.length >= RAW_MIN) {
        outgoing = r.bytes;
        return frame({ ...r.json, raw: r.bytes.length });
      }
      return frame(r.json, r.bytes);
    } catch (e) {
      if (isOtaError(e)) return frame({ error: { code: e.code, message: e.message } });
      return frame({ hostError: e instanceof Error ? e.message : String(e) });
    }
  };
  return (message) => {
    if (waitingFor) {
      const json = waitingFor;
      waitingFor = undefined;
      const { offset, length } = json.raw as { offset: number; length: number };
      return run(json, message.subarray(offset, offset + length));
    }
    if (outgoing && message.length === 0) {
      const bytes = outgoing;
      outgoing = undefined;
      return bytes;
    }
    const { json, bytes } = unframe(message);
    if (json.raw !== undefined) {
      waitingFor = json;
      return frame({ send: true });
    }
    return run(json, bytes);
  };
}

export class BridgeHost {
  readonly #hw: BridgeHardware;
  #mqtt: Mqtt | undefined;
  readonly #events: { event: BridgeEvent; bytes?: Uint8Array }[] = [];
  readonly #timers = new Map<number, NodeJS.Timeout>();
  readonly #responses = new Map<number, HttpResponse>();
  readonly #digests = new Map<number, Digest>();
  readonly #stall = new FlashStall();
  #next = 1;
  #busy = true;
  #closed = false;

  constructor(hardware: BridgeHardware) {
    this.#hw = hardware;
    if (hardware.mqtt) this.attachMqtt(hardware.mqtt, false);
  }

  /** Hands the firmware an MQTT session that came up after boot (or at boot, `announce` false). */
  attachMqtt(mqtt: Mqtt, announce = true): void {
    this.#mqtt = mqtt;
    mqtt.onMessage((topic, payload) => this.#queue({ kind: "mqtt.message", topic, length: payload.length }, payload));
    mqtt.onConnectionChange((connected) => this.#queue({ kind: "mqtt.connection", connected }));
    if (announce) this.#queue({ kind: "mqtt.connection", connected: true });
  }

  /** XS finished a command: deliver what waits, if anything. */
  idle(): void {
    this.#busy = false;
    if (this.#events.length) this.#wake();
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const r of this.#responses.values()) r.close();
    this.#responses.clear();
    this.#events.length = 0;
  }

  #queue(event: BridgeEvent, bytes?: Uint8Array): void {
    if (this.#closed) return;
    this.#events.push({ event, bytes });
    if (!this.#busy) this.#wake();
  }

  #wake(): void {
    this.#busy = true;
    this.#hw.wake();
  }

  readonly serve: HostCall = framedHostCall((json, bytes) => {
    if (this.#closed) return new Promise<Reply>(() => undefined); // the chip is off
    return this.#call(String(json.op), json, bytes);
  });

  async #call(op: string, a: Record<string, unknown>, bytes: Uint8Array): Promise<Reply> {
    const hw = this.#hw;
    switch (op) {
      case "device.identity":
        return reply({ identity: hw.identity });
      case "events.next": {
        const next = this.#events.shift();
        return next ? reply({ event: next.event }, next.bytes) : reply({});
      }
      case "flash.status":
        return reply({ status: hw.flash.status() });
      case "flash.read":
        return reply({}, new Uint8Array(hw.flash.read(int(a.length), int(a.offset))));
      case "flash.write": {
        const start = performance.now();
        const offset = int(a.offset);
        hw.flash.write(bytes.slice(), offset);
        if (hw.flashTiming) await this.#busyFor(writeCost(hw.flashTiming, offset, bytes.length).ms);
        hw.trace?.({ kind: "flash.write", offset, length: bytes.length, start, at: performance.now() });
        return reply({});
      }
      case "flash.erase": {
        const start = performance.now();
        const first = int(a.first);
        const last = a.last === undefined || a.last === null ? first + 1 : int(a.last);
        hw.flash.eraseBlock(first, last);
        const bl = hw.flash.status().blockLength;
        if (hw.flashTiming) await this.#busyFor(eraseCost(hw.flashTiming, first * bl, (last - first) * bl).ms);
        hw.trace?.({ kind: "flash.erase", offset: first * bl, length: (last - first) * bl, start, at: performance.now() });
        return reply({});
      }
      case "state.get": {
        const value = hw.store.get(String(a.key));
        return value === undefined ? reply({ found: false }) : reply({ found: true }, value);
      }
      case "state.set":
        hw.store.set(String(a.key), bytes.slice());
        hw.trace?.({ kind: "state.set", key: String(a.key), at: performance.now() });
        return reply({});
      case "state.delete":
        hw.store.delete(String(a.key));
        return reply({});
      case "digest.create": {
        const id = this.#next++;
        this.#digests.set(id, nodeDigests.create(a.algorithm as DigestAlgorithm));
        return reply({ id });
      }
      case "digest.update":
        this.#digest(a.id).update(bytes);
        return reply({});
      case "digest.finish": {
        const result = this.#digest(a.id).finish();
        this.#digests.delete(int(a.id));
        return reply({}, result);
      }
      case "timer.set": {
        const id = int(a.id);
        clearTimeout(this.#timers.get(id));
        this.#timers.set(
          id,
          setTimeout(() => {
            this.#timers.delete(id);
            this.#queue({ kind: "timer", id });
          }, Math.min(int(a.ms), 0x7fffffff)),
        );
        return reply({});
      }
      case "timer.clear":
        clearTimeout(this.#timers.get(int(a.id)));
        this.#timers.delete(int(a.id));
        return reply({});
      case "http.request": {
        const request = a.request as HttpRequest;
        hw.trace?.({ kind: "http.request", url: request.url, at: performance.now() });
        const response = await hw.http.request(a.body === true ? { ...request, body: bytes.slice() } : request);
        const id = this.#next++;
        this.#responses.set(id, response);
        return reply({ id, status: response.status, headers: response.headers });
      }
      case "http.read":
        return this.#read(int(a.id));
      case "http.close":
        this.#responses.get(int(a.id))?.close();
        this.#responses.delete(int(a.id));
        return reply({});
      case "mqtt.subscribe":
        await this.#session().subscribe(String(a.topic), a.qos as QoS);
        return reply({});
      case "mqtt.publish":
        hw.trace?.({ kind: "mqtt.publish", topic: String(a.topic), at: performance.now() });
        await this.#session().publish(String(a.topic), bytes.slice(), a.qos as QoS);
        return reply({});
      case "system.log":
        hw.log(LEVELS.has(String(a.level)) ? String(a.level) : "info", String(a.message));
        return reply({});
      case "system.restart":
        hw.restart();
        return new Promise<Reply>(() => undefined);
      default:
        throw new OtaError("bad-argument", `unknown bridge call ${op}`);
    }
  }

  /**
   * The chip is busy: this call (so the firmware, which waits for it) returns when it is done,
   * while this process goes on serving the network, whose bytes wait in the socket buffers as a
   * device's wait in lwIP's while its flash driver blocks the task.
   */
  async #busyFor(ms: number): Promise<void> {
    const due = this.#stall.schedule(ms, performance.now());
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    this.#stall.replied(due, performance.now());
  }

  /**
   * Body bytes the host already holds go back with the call; otherwise the chunk follows as an
   * event when it arrives, as Moddable's HTTP client calls back when data is readable.
   */
  #read(id: number): Reply {
    const response = this.#responses.get(id);
    if (!response) return reply({ end: true });
    // Bytes already here go back with the call, as a device's driver hands out what it buffered.
    const at = response instanceof NodeResponse ? response.takeQueued() : undefined;
    if (at !== undefined) return reply({}, at);
    response.read().then(
      (chunk) => this.#queue({ kind: "http.data", id, end: chunk === undefined, length: chunk?.length ?? 0 }, chunk),
      (e: unknown) => this.#queue({ kind: "http.data", id, error: isOtaError(e) ? { code: e.code, message: e.message } : { code: "network", message: String(e) } }),
    );
    return reply({ pending: true });
  }

  #digest(id: unknown): Digest {
    const d = this.#digests.get(int(id));
    if (!d) throw new OtaError("bad-argument", `no digest ${String(id)}`);
    return d;
  }

  #session(): Mqtt {
    if (!this.#mqtt) throw new OtaError("network", "MQTT is not connected");
    return this.#mqtt;
  }
}

function int(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new OtaError("bad-argument", `bridge: expected an integer, got ${String(v)}`);
  return v;
}
