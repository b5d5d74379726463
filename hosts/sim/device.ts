/**
 * The one device runner: a simulated board running its firmware on an XS engine. Power on: the
 * board's bootloader (hosts/sim/board.ts: ESP-IDF with rollback, W800 secboot, the AFR cloner)
 * picks or installs the image in the flash file, and the image's JavaScript program is evaluated
 * in a fresh `xsnap-worker` (or a Moddable-built engine, `engine`). The program reaches the
 * hardware through the bridge (hosts/sim/xs: flash, NVS, MQTT, HTTP, timers, digests), which this
 * side serves; `serve` lets a host's fakes answer calls of their own first (the esp32 host's
 * Preference and TLS socket, test/moddable/device.ts). `restart()` from the firmware, or a crash,
 * resets the chip: the XS machine is killed where it stands and the bootloader runs again.
 */
import { EventEmitter } from "node:events";
import type { AgentConfig } from "../../modules/agent/config.ts";
import type { BootInfo } from "../../modules/ports/boot-control.ts";
import { JOB_KEY } from "../../modules/agent/agent.ts";
import { openBoard, type Board } from "./board.ts";
import { layoutOf } from "./layouts.ts";
import { NodeMqtt, type NodeMqttOptions } from "./mqtt.ts";
import { nodeDigests } from "./node-digest.ts";
import { cloudPreset } from "./clouds.ts";
import { NodeHttp } from "./http.ts";
import { XsWorker, XsError, type HostCall, type XsMeters, type XsReply } from "./xsnap.ts";
import { BridgeHost, type HardwareTrace } from "./bridge-host.ts";
import type { FlashTiming } from "./flash-timing.ts";
import type { SimCloud, SimIdentity } from "./xs/host.ts";

export interface DeviceOptions {
  /** The folder of a flashed device (hosts/sim/board.ts: flashDevice). */
  dir: string;
  thing: string;
  brokerUrl: string;
  /** For an mqtts:// broker: the CA to trust and the thing's client certificate and key (PEM), for mutual TLS. */
  mqttTls?: { ca: string; cert: string; key: string };
  /** Code-signing public keys (PEM) by certfile label. */
  keys: Record<string, string>;
  cloud?: SimCloud;
  /** Agent settings the firmware starts with (e.g. the HTTPS CA). */
  config?: Partial<AgentConfig>;
  /** Milliseconds before a crashed firmware is restarted (default 500). */
  crashDelay?: number;
  /**
   * XS's meters after each command of the firmware (its boot, then each turn of its event loop),
   * and with `liveHeap` the heap's live slots right after, counted after a collection.
   */
  onMeters?: (meters: XsMeters, command: "boot" | "pump", liveHeap?: number) => void;
  liveHeap?: boolean;
  /** Flash erase and program times (hosts/sim/flash-timing.ts); none by default, so flash calls return at once. */
  flashTiming?: FlashTiming;
  /** Every flash operation, HTTP request and MQTT publish of the firmware, as it happens. */
  trace?: (event: HardwareTrace) => void;
  /** The engine the firmware runs on: the device-faithful xsnap-worker by default. */
  engine?: { binary: string; args: string[] };
  /** More of what the firmware learns at boot (a host's own provisioning). */
  identity?: Record<string, unknown>;
  /** Make the MQTT session at power-on (default true); a host whose firmware hands over its own credentials makes it through `serve`. */
  connectAtBoot?: boolean;
  /** Wraps the bridge's answers, for a host whose fakes serve calls of their own. */
  serve?: (boot: BootHandle, bridge: HostCall) => HostCall;
}

/** One power-on, as `serve` sees it. */
export interface BootHandle {
  readonly bridge: BridgeHost;
  /** True once this power-on is over (a reset or power off). */
  readonly closed: boolean;
  /** Hands the firmware an MQTT session made later (the runner closes it at power-down). */
  attachMqtt(mqtt: NodeMqtt): void;
  /** Reports a runner note to the event stream. */
  note(message: string): void;
}

export type DeviceEvent =
  | { type: "boot"; boots: number; slot: string; version: string; bootloader: string[] }
  | { type: "log"; level: string; message: string }
  | { type: "restart"; reason: string }
  | { type: "halt"; reason: string };

export class SimulatedDevice extends EventEmitter<{ event: [DeviceEvent] }> {
  readonly o: DeviceOptions;
  boots = 0;
  slot: string | undefined;
  version: string | undefined;
  #board: Board | undefined;
  #worker: XsWorker | undefined;
  #bridge: BridgeHost | undefined;
  #mqtt: NodeMqtt | undefined;
  #generation = 0;
  #resetting: Promise<void> | undefined;
  #stopped = true;

  constructor(options: DeviceOptions) {
    super();
    this.o = options;
  }

  /** Powers the device on (opens its flash) and boots it. */
  async start(): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#board = openBoard(this.o.dir);
    await this.#boot();
  }

  /** Power off: the firmware stops where it is; flash and NVS keep what was written. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#generation++;
    await this.#powerDown();
    this.#board?.close();
    this.#board = undefined;
  }

  /** The running image's trial state as the boot data says ("pending" until the firmware confirms). */
  bootInfo(): BootInfo | undefined {
    if (!this.#board || this.slot === undefined) return undefined;
    return layoutOf(this.#board.spec.name).boot(this.#board.partitions).info();
  }

  /** Whether the agent holds a job record in NVS (a job under way, or an outcome not yet reported). */
  jobPending(): boolean {
    return this.#board?.store.get(JOB_KEY) !== undefined;
  }

  /** Resolves once a reset in progress has booted again. */
  async settled(): Promise<void> {
    while (this.#resetting) await this.#resetting;
  }

  #emit(event: DeviceEvent): void {
    this.emit("event", event);
  }

  async #powerDown(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    this.#bridge?.close();
    this.#bridge = undefined;
    await worker?.kill();
    const mqtt = this.#mqtt;
    this.#mqtt = undefined;
    await mqtt?.close().catch(() => undefined);
  }

  /** A chip reset: power down, then the bootloader runs again. */
  #reset(reason: string, delay = 0): void {
    if (this.#resetting || this.#stopped) return;
    const generation = ++this.#generation;
    this.#emit({ type: "restart", reason });
    this.#resetting = (async () => {
      await this.#powerDown();
      if (delay) await new Promise((r) => setTimeout(r, delay));
      if (generation !== this.#generation || this.#stopped) return;
      this.#resetting = undefined;
      await this.#boot();
    })().finally(() => {
      if (generation === this.#generation) this.#resetting = undefined;
    });
  }

  async #boot(): Promise<void> {
    const board = this.#board;
    if (!board) return;
    const generation = this.#generation;
    this.boots++;
    const outcome = await board.spec.bootloader(board.partitions);
    if (generation !== this.#generation) return;
    if (outcome.slot === undefined) {
      this.slot = undefined;
      this.#emit({ type: "halt", reason: outcome.log.join("; ") });
      return;
    }
    const program = board.spec.program(board.partitions, outcome.slot);
    this.slot = outcome.slot;
    this.version = program.version;
    this.#emit({ type: "boot", boots: this.boots, slot: outcome.slot, version: program.version, bootloader: outcome.log });

    let mqtt: NodeMqtt | undefined;
    const connectAtBoot = this.o.connectAtBoot ?? true;
    if (connectAtBoot) {
      try {
        mqtt = await NodeMqtt.connect(this.o.brokerUrl, this.#mqttOptions());
      } catch (e) {
        // The firmware still runs; the session comes up later or never (its agent waits).
        this.#emit({ type: "log", level: "warn", message: `MQTT: ${e instanceof Error ? e.message : String(e)}` });
      }
    }
    if (generation !== this.#generation) {
      await mqtt?.close();
      return;
    }
    this.#mqtt = mqtt;
    const identity: SimIdentity = {
      thing: this.o.thing,
      board: board.spec.name,
      version: program.version,
      cloud: this.o.cloud ?? { kind: "aws" },
      keys: this.o.keys,
      config: this.o.config ?? {},
      table: board.table,
      running: outcome.slot,
      connected: mqtt !== undefined,
      ...this.o.identity,
    };
    const worker = new XsWorker(this.o.thing, this.o.engine ?? {});
    this.#worker = worker;
    const bridge = new BridgeHost({
      flash: board.file.flash,
      store: board.store,
      http: new NodeHttp(),
      mqtt,
      identity,
      log: (level, message) => this.#emit({ type: "log", level, message }),
      restart: () => this.#reset("restart() by the firmware"),
      wake: () => this.#pump(worker),
      flashTiming: this.o.flashTiming,
      trace: this.o.trace,
    });
    this.#bridge = bridge;
    const serve: HostCall = (request) => bridge.serve(request);
    const device = this;
    const handle: BootHandle = {
      bridge,
      get closed() {
        return worker !== device.#worker;
      },
      attachMqtt: (session) => {
        this.#mqtt = session;
        bridge.attachMqtt(session);
      },
      note: (message) => this.#emit({ type: "log", level: "warn", message: `runner: ${message}` }),
    };
    worker.hostCall = this.o.serve ? this.o.serve(handle, serve) : serve;
    this.#run(worker, worker.evaluate(program.source), "boot");
    if (!mqtt && connectAtBoot) void this.#connectLater(generation, bridge);
  }

  /** The thing name as client id, or the cloud's own login (EnOS), made again for each connection. */
  #mqttOptions(): NodeMqttOptions {
    const cloud = this.o.cloud ?? { kind: "aws" };
    const preset = cloudPreset(cloud.kind === "aws" ? { kind: "aws", thing: this.o.thing } : cloud);
    const mqttLogin = preset.mqttLogin?.bind(preset);
    return { clientId: this.o.thing, connectTimeout: 10_000, ...this.o.mqttTls, login: mqttLogin ? () => mqttLogin(Date.now(), nodeDigests) : undefined };
  }

  /** The broker was not there at boot: keep trying, as a device's Wi-Fi/MQTT task would. */
  async #connectLater(generation: number, bridge: BridgeHost): Promise<void> {
    while (generation === this.#generation && !this.#stopped) {
      await new Promise((r) => setTimeout(r, 2000));
      if (generation !== this.#generation || this.#stopped) return;
      try {
        const mqtt = await NodeMqtt.connect(this.o.brokerUrl, this.#mqttOptions());
        if (generation !== this.#generation || this.#stopped) return void (await mqtt.close());
        this.#mqtt = mqtt;
        bridge.attachMqtt(mqtt);
        return;
      } catch {
        // still not there
      }
    }
  }

  /** Runs one command of the firmware; a throw out of it is a crash (a panic resets the chip). */
  #run(worker: XsWorker, command: Promise<XsReply>, kind: "boot" | "pump"): void {
    command.then(
      async (reply) => {
        if (worker !== this.#worker) return;
        const live = this.o.liveHeap ? (await worker.evaluate("xsnap.gc()")).meters.currentHeapCount : undefined;
        this.o.onMeters?.(reply.meters, kind, live);
        if (worker === this.#worker) this.#bridge?.idle();
      },
      (e: unknown) => {
        if (worker !== this.#worker) return;
        const reason = e instanceof XsError ? e.message.split("\n")[0] : String(e);
        this.#emit({ type: "log", level: "error", message: `firmware crashed: ${reason}` });
        this.#reset(`crash: ${reason}`, this.o.crashDelay ?? 500);
      },
    );
  }

  /** Events are waiting and XS is idle: let the firmware's event loop take them. */
  #pump(worker: XsWorker): void {
    if (worker !== this.#worker) return;
    this.#run(worker, worker.evaluate("__sim.pump()"), "pump");
  }

}
