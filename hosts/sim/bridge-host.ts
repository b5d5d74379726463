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
import { frame, unframe, type BridgeEvent } from "./xs/bridge.ts";
import type { SimIdentity } from "./xs/host.ts";

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
}

const LEVELS = new Set(["debug", "info", "warn", "error"]);

export class BridgeHost {
  readonly #hw: BridgeHardware;
  #mqtt: Mqtt | undefined;
  readonly #events: { event: BridgeEvent; bytes?: Uint8Array }[] = [];
  readonly #timers = new Map<number, NodeJS.Timeout>();
  readonly #responses = new Map<number, HttpResponse>();
  readonly #digests = new Map<number, Digest>();
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

  async serve(message: Uint8Array): Promise<Uint8Array> {
    const { json, bytes } = unframe(message);
    try {
      if (this.#closed) return new Promise<Uint8Array>(() => undefined); // the chip is off
      return await this.#call(String(json.op), json, bytes);
    } catch (e) {
      if (isOtaError(e)) return frame({ error: { code: e.code, message: e.message } });
      return frame({ hostError: e instanceof Error ? e.message : String(e) });
    }
  }

  async #call(op: string, a: Record<string, unknown>, bytes: Uint8Array): Promise<Uint8Array> {
    const hw = this.#hw;
    switch (op) {
      case "device.identity":
        return frame({ identity: hw.identity });
      case "events.take": {
        const batch = this.#events.splice(0);
        const size = batch.reduce((n, e) => n + (e.bytes?.length ?? 0), 0);
        const out = new Uint8Array(size);
        let at = 0;
        for (const e of batch) {
          if (e.bytes) out.set(e.bytes, at);
          at += e.bytes?.length ?? 0;
        }
        return frame({ events: batch.map((e) => e.event) }, out);
      }
      case "flash.status":
        return frame({ status: hw.flash.status() });
      case "flash.read":
        return frame({}, new Uint8Array(hw.flash.read(int(a.length), int(a.offset))));
      case "flash.write":
        hw.flash.write(bytes.slice(), int(a.offset));
        return frame({});
      case "flash.erase":
        hw.flash.eraseBlock(int(a.first), a.last === undefined || a.last === null ? undefined : int(a.last));
        return frame({});
      case "state.get": {
        const value = hw.store.get(String(a.key));
        return value === undefined ? frame({ found: false }) : frame({ found: true }, value);
      }
      case "state.set":
        hw.store.set(String(a.key), bytes.slice());
        return frame({});
      case "state.delete":
        hw.store.delete(String(a.key));
        return frame({});
      case "digest.create": {
        const id = this.#next++;
        this.#digests.set(id, nodeDigests.create(a.algorithm as DigestAlgorithm));
        return frame({ id });
      }
      case "digest.update":
        this.#digest(a.id).update(bytes);
        return frame({});
      case "digest.finish": {
        const result = this.#digest(a.id).finish();
        this.#digests.delete(int(a.id));
        return frame({}, result);
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
        return frame({});
      }
      case "timer.clear":
        clearTimeout(this.#timers.get(int(a.id)));
        this.#timers.delete(int(a.id));
        return frame({});
      case "http.request": {
        const response = await hw.http.request(a.request as HttpRequest);
        const id = this.#next++;
        this.#responses.set(id, response);
        return frame({ id, status: response.status, headers: response.headers });
      }
      case "http.read": {
        const chunk = await this.#responses.get(int(a.id))?.read();
        return chunk === undefined ? frame({ end: true }) : frame({}, chunk);
      }
      case "http.close":
        this.#responses.get(int(a.id))?.close();
        this.#responses.delete(int(a.id));
        return frame({});
      case "mqtt.subscribe":
        await this.#session().subscribe(String(a.topic), a.qos as QoS);
        return frame({});
      case "mqtt.publish":
        await this.#session().publish(String(a.topic), bytes.slice(), a.qos as QoS);
        return frame({});
      case "system.log":
        hw.log(LEVELS.has(String(a.level)) ? String(a.level) : "info", String(a.message));
        return frame({});
      case "system.restart":
        hw.restart();
        return new Promise<Uint8Array>(() => undefined);
      default:
        throw new OtaError("bad-argument", `unknown bridge call ${op}`);
    }
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
