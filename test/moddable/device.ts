/**
 * Runs test firmware for the esp32 host on the real XS engine, as a board would: the simulated
 * ESP-IDF bootloader (rollback enabled) picks a slot in the flash file, the image's program runs
 * in a fresh xsnap worker, and the Moddable stand-ins (./fakes) reach the hardware over the
 * simulator's bridge: the NOR chip, timers, the MQTT session (a real broker), HTTP(S), logs,
 * restart. NVS for `preference` is kept here, by domain and key, across restarts.
 * With an mqtts:// `brokerUrl` the session is not made at boot: the firmware's MQTT client hands
 * over the DER its TLS socket was given ("mqtt.tls"), and the session is made with exactly that
 * CA, client certificate and key, so the broker's own handshake checks what the host provisioned.
 * `System.restart()` kills the machine where it stands, runs the bootloader again over the same
 * flash, and starts the slot it picks.
 */
import { EventEmitter } from "node:events";
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { TlsPem } from "../../hosts/esp32/tls.ts";
import { runBootloader } from "../../hosts/sim/bootloader.ts";
import { checkImage, imageProgram, openBoard, type Board } from "../../hosts/sim/board.ts";
import { BridgeHost, framedHostCall, type Reply } from "../../hosts/sim/bridge-host.ts";
import { NodeHttp } from "../../hosts/sim/http.ts";
import { NodeMqtt, type NodeMqttOptions } from "../../hosts/sim/mqtt.ts";
import { XsWorker, XsError, type HostCall } from "../../hosts/sim/xsnap.ts";
import { unframe } from "../../hosts/sim/xs/bridge.ts";
import type { SimIdentity } from "../../hosts/sim/xs/host.ts";
import { OtadataBootControl } from "../../modules/esp-idf/boot-control.ts";
import type { BootInfo } from "../../modules/ports/boot-control.ts";

/** What the firmware learns at boot: the board (table, running slot) and its provisioning. */
export interface Esp32TestIdentity extends SimIdentity {
  mqtt: { host: string; port?: number; tls?: TlsPem };
  /** The session waits for the firmware's TLS credentials ("mqtt.tls"). */
  mqttTls: boolean;
  /** The session waits for the firmware's CONNECT login ("mqtt.login": EnOS). */
  mqttLogin: boolean;
}

export interface Esp32DeviceOptions {
  /** A flashed device folder (hosts/sim/board.ts flashDevice). */
  dir: string;
  thing: string;
  brokerUrl: string;
  keys: Record<string, string>;
  /** HTTPS CA for downloads (PEM). */
  ca: string;
  /** What the firmware is told about its broker; the session itself is made here, to brokerUrl. */
  mqtt: Esp32TestIdentity["mqtt"];
  /** The engine the firmware runs on: by default the device-faithful XS; else a Moddable program. */
  binary?: string;
  /** An EnOS device (device key = thing): it logs in with the CONNECT fields its host makes. */
  enos?: { productKey: string; deviceSecret: string; fileService: string };
}

export type Esp32DeviceEvent =
  | { type: "boot"; slot: string; version: string; bootloader: string[] }
  | { type: "log"; level: string; message: string }
  | { type: "restart"; reason: string }
  | { type: "halt"; reason: string };

interface Boot {
  worker: XsWorker;
  bridge: BridgeHost;
  mqtt: NodeMqtt | undefined;
  /** The TLS session being made from the firmware's credentials. */
  connecting?: Promise<void>;
  closed: boolean;
}

interface Stored {
  stored: unknown;
  bytes: Uint8Array;
}

export class Esp32TestDevice extends EventEmitter<{ event: [Esp32DeviceEvent] }> {
  readonly o: Esp32DeviceOptions;
  /** NVS: Preference records by domain and key. */
  readonly nvs = new Map<string, Map<string, Stored>>();
  readonly events: Esp32DeviceEvent[] = [];
  slot: string | undefined;
  version: string | undefined;
  #board: Board | undefined;
  #boot: Boot | undefined;
  #resetting: Promise<void> | undefined;

  constructor(options: Esp32DeviceOptions) {
    super();
    this.o = options;
    this.on("event", (e) => this.events.push(e));
  }

  async start(): Promise<void> {
    this.#board = openBoard(this.o.dir);
    await this.#powerOn();
  }

  async stop(): Promise<void> {
    await this.#resetting;
    await this.#powerDown();
    this.#board?.close();
    this.#board = undefined;
  }

  bootInfo(): BootInfo | undefined {
    return this.#board ? new OtadataBootControl(this.#board.partitions).info() : undefined;
  }

  /** What the firmware traced (the host's lines read "xs-ota <level>: <message>"), and the runner's own notes. */
  logs(): string[] {
    return this.events.flatMap((e) => (e.type === "log" ? [e.message] : []));
  }

  async #powerOn(): Promise<void> {
    const board = this.#board;
    if (!board) return;
    const outcome = runBootloader(board.partitions, checkImage);
    if (outcome.slot === undefined) {
      this.slot = undefined;
      this.emit("event", { type: "halt", reason: outcome.log.join("; ") });
      return;
    }
    const program = imageProgram(board.partitions.open(outcome.slot));
    this.slot = outcome.slot;
    this.version = program.version;
    this.emit("event", { type: "boot", slot: outcome.slot, version: program.version, bootloader: outcome.log });
    const mqttTls = this.o.brokerUrl.startsWith("mqtts:");
    const mqttLogin = this.o.enos !== undefined;
    const mqtt = mqttTls || mqttLogin ? undefined : await NodeMqtt.connect(this.o.brokerUrl, { clientId: this.o.thing, connectTimeout: 10_000 });
    const identity: Esp32TestIdentity = {
      thing: this.o.thing,
      cloud: this.o.enos ? { kind: "enos", deviceKey: this.o.thing, ...this.o.enos } : { kind: "aws" },
      keys: this.o.keys,
      config: { ca: this.o.ca },
      table: board.table,
      running: outcome.slot,
      connected: !mqttTls && !mqttLogin,
      mqtt: this.o.mqtt,
      mqttTls,
      mqttLogin,
    };
    const worker = new XsWorker(this.o.thing, this.o.binary ? { binary: this.o.binary, args: [] } : {});
    const bridge: BridgeHost = new BridgeHost({
      flash: board.file.flash,
      store: board.store,
      http: new NodeHttp(),
      mqtt,
      identity,
      log: (level, message) => this.emit("event", { type: "log", level, message }),
      restart: () => this.#reset("System.restart()"),
      wake: () => this.#run(boot, worker.evaluate("__sim.pump()")),
    });
    const boot: Boot = { worker, bridge, mqtt, closed: false };
    this.#boot = boot;
    worker.hostCall = this.#hostCall(boot);
    this.#run(boot, worker.evaluate(program.source));
  }

  async #powerDown(): Promise<void> {
    const boot = this.#boot;
    this.#boot = undefined;
    if (!boot) return;
    boot.closed = true;
    boot.bridge.close();
    await boot.worker.kill();
    await boot.connecting;
    await boot.mqtt?.close().catch(() => undefined);
  }

  #reset(reason: string): void {
    if (this.#resetting) return;
    this.emit("event", { type: "restart", reason });
    this.#resetting = (async () => {
      await this.#powerDown();
      await this.#powerOn();
    })().finally(() => (this.#resetting = undefined));
  }

  /** One command of the firmware; a throw out of it is a crash, which resets the chip. */
  #run(boot: Boot, command: Promise<unknown>): void {
    command.then(
      () => {
        if (!boot.closed) boot.bridge.idle();
      },
      (e: unknown) => {
        if (boot.closed) return;
        const reason = e instanceof XsError ? e.message.split("\n")[0] : String(e);
        this.emit("event", { type: "log", level: "error", message: `firmware crashed: ${reason}` });
        this.#reset(`crash: ${reason}`);
      },
    );
  }

  /**
   * Preference's NVS is served here, everything else by the simulator's bridge. A call whose
   * bytes or reply travel in a second message (the bridge's framing) is finished by whichever
   * side began it.
   */
  #hostCall(boot: Boot): HostCall {
    const prefs = framedHostCall(async (json, bytes) => this.#preference(json, bytes));
    const tls = framedHostCall(async (json, bytes) => this.#mqttTls(boot, json, bytes));
    let continuing: HostCall | undefined;
    return async (message) => {
      if (boot.closed) return new Promise<Uint8Array>(() => undefined);
      if (continuing) {
        const target = continuing;
        continuing = undefined;
        return target(message);
      }
      const op = String(unframe(message).json.op);
      const target = op.startsWith("pref.") ? prefs : op === "mqtt.tls" || op === "mqtt.login" ? tls : boot.bridge.serve;
      const answer = await target(message);
      const json = unframe(answer).json;
      if (json.send === true || typeof json.raw === "number") continuing = target;
      return answer;
    };
  }

  /** The firmware's MQTT client opens its TLS socket: make the real session with what it was given. */
  #mqttTls(boot: Boot, json: Record<string, unknown>, bytes: Uint8Array): Reply {
    if (boot.mqtt) return { json: { connected: boot.mqtt.connected } };
    if (boot.connecting) return { json: { connected: false } };
    if (json.op === "mqtt.login") {
      // The CONNECT as the firmware's client would send it: its client id, user name and password.
      const login = { clientId: String(json.id), username: String(json.user), password: String(json.password) };
      return this.#connectLater(boot, { clientId: login.clientId, connectTimeout: 10_000, login: () => login }, "MQTT login");
    }
    const caLength = Number(json.ca);
    const lengths = json.certificates as number[];
    const pem = (der: Uint8Array) => new X509Certificate(der).toString();
    let at = caLength;
    const certificates = lengths.map((n) => bytes.subarray(at, (at += n)));
    const keyDer = Number(json.key) > 0 ? bytes.subarray(at, at + Number(json.key)) : undefined;
    const options = {
      clientId: this.o.thing,
      connectTimeout: 10_000,
      ...(caLength > 0 ? { ca: pem(bytes.subarray(0, caLength)) } : {}),
      ...(certificates.length > 0 ? { cert: certificates.map(pem).join("") } : {}),
      ...(keyDer ? { key: createPrivateKey({ key: Buffer.from(keyDer), format: "der", type: "pkcs8" }).export({ format: "pem", type: "pkcs8" }).toString() } : {}),
    };
    return this.#connectLater(boot, options, "MQTT over TLS");
  }

  /** As a device's network task would: keep trying until the broker takes the session. */
  #connectLater(boot: Boot, options: NodeMqttOptions, what: string): Reply {
    boot.connecting = (async () => {
      for (let attempt = 1; !boot.closed; attempt++) {
        try {
          const mqtt = await NodeMqtt.connect(this.o.brokerUrl, options);
          if (boot.closed) return void (await mqtt.close());
          boot.mqtt = mqtt;
          boot.bridge.attachMqtt(mqtt);
          return;
        } catch (e) {
          if (attempt === 1) this.emit("event", { type: "log", level: "warn", message: `runner: ${what}: ${e instanceof Error ? e.message : String(e)}` });
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    })().finally(() => (boot.connecting = undefined));
    return { json: { connected: false } };
  }

  #preference(json: Record<string, unknown>, bytes: Uint8Array): Reply {
    const domain = String(json.domain);
    const key = String(json.key);
    switch (json.op) {
      case "pref.get": {
        const found = this.nvs.get(domain)?.get(key);
        return found ? { json: { stored: found.stored }, bytes: found.bytes } : { json: {} };
      }
      case "pref.set": {
        const records = this.nvs.get(domain) ?? new Map<string, Stored>();
        records.set(key, { stored: json.stored, bytes: bytes.slice() });
        this.nvs.set(domain, records);
        return { json: {} };
      }
      case "pref.delete":
        this.nvs.get(domain)?.delete(key);
        return { json: {} };
      default:
        return { json: { keys: [...(this.nvs.get(domain)?.keys() ?? [])] } };
    }
  }
}
