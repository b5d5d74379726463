/**
 * Runs test firmware for the esp32 host on an XS engine, through the one device runner
 * (hosts/sim/device.ts) with the esp32 host's stand-ins served here: Preference's NVS, kept by
 * domain and key across restarts, and the MQTT session, which is not made at boot: the
 * firmware's MQTT client hands over the DER its TLS socket was given ("mqtt.tls") or its CONNECT
 * login ("mqtt.login", EnOS), and the session is made with exactly those, so the broker's own
 * handshake checks what the host provisioned. Everything else (the NOR chip, timers, HTTP(S),
 * logs, restart, the ESP-IDF bootloader) is the simulator's bridge and board.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { TlsPem } from "../../hosts/esp32/tls.ts";
import { framedHostCall, type Reply } from "../../hosts/sim/bridge-host.ts";
import { SimulatedDevice, type BootHandle, type DeviceEvent } from "../../hosts/sim/device.ts";
import { NodeMqtt, type NodeMqttOptions } from "../../hosts/sim/mqtt.ts";
import type { HostCall } from "../../hosts/sim/xsnap.ts";
import { unframe } from "../../hosts/sim/xs/bridge.ts";
import type { SimIdentity } from "../../hosts/sim/xs/host.ts";
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

export type Esp32DeviceEvent = DeviceEvent;

interface Stored {
  stored: unknown;
  bytes: Uint8Array;
}

export class Esp32TestDevice {
  readonly o: Esp32DeviceOptions;
  /** NVS: Preference records by domain and key. */
  readonly nvs = new Map<string, Map<string, Stored>>();
  readonly events: Esp32DeviceEvent[] = [];
  readonly #device: SimulatedDevice;

  constructor(options: Esp32DeviceOptions) {
    this.o = options;
    const mqttTls = options.brokerUrl.startsWith("mqtts:");
    const mqttLogin = options.enos !== undefined;
    this.#device = new SimulatedDevice({
      dir: options.dir,
      thing: options.thing,
      brokerUrl: options.brokerUrl,
      keys: options.keys,
      cloud: options.enos ? { kind: "enos", deviceKey: options.thing, ...options.enos } : { kind: "aws" },
      config: { ca: options.ca },
      crashDelay: 0,
      engine: options.binary ? { binary: options.binary, args: [] } : undefined,
      connectAtBoot: !mqttTls && !mqttLogin,
      identity: { mqtt: options.mqtt, mqttTls, mqttLogin },
      serve: (boot, bridge) => this.#serve(boot, bridge),
    });
    this.#device.on("event", (e) => this.events.push(e));
  }

  get slot(): string | undefined {
    return this.#device.slot;
  }

  get version(): string | undefined {
    return this.#device.version;
  }

  start(): Promise<void> {
    return this.#device.start();
  }

  async stop(): Promise<void> {
    await this.#device.settled();
    await this.#device.stop();
  }

  bootInfo(): BootInfo | undefined {
    return this.#device.bootInfo();
  }

  /** What the firmware traced (the host's lines read "xs-ota <level>: <message>"), and the runner's own notes. */
  logs(): string[] {
    return this.events.flatMap((e) => (e.type === "log" ? [e.message] : []));
  }

  /**
   * Preference's NVS and the TLS socket are served here, everything else by the bridge. A call
   * whose bytes or reply travel in a second message (the bridge's framing) is finished by
   * whichever side began it.
   */
  #serve(boot: BootHandle, bridge: HostCall): HostCall {
    const prefs = framedHostCall(async (json, bytes) => this.#preference(json, bytes));
    const session = { connecting: false, connected: false };
    const tls = framedHostCall(async (json, bytes) => this.#mqttTls(boot, session, json, bytes));
    let continuing: HostCall | undefined;
    return async (message) => {
      if (boot.closed) return new Promise<Uint8Array>(() => undefined);
      if (continuing) {
        const target = continuing;
        continuing = undefined;
        return target(message);
      }
      const op = String(unframe(message).json.op);
      const target = op.startsWith("pref.") ? prefs : op === "mqtt.tls" || op === "mqtt.login" ? tls : bridge;
      const answer = await target(message);
      const json = unframe(answer).json;
      if (json.send === true || typeof json.raw === "number") continuing = target;
      return answer;
    };
  }

  /** The firmware's MQTT client opens its TLS socket: make the real session with what it was given. */
  #mqttTls(boot: BootHandle, session: { connecting: boolean; connected: boolean }, json: Record<string, unknown>, bytes: Uint8Array): Reply {
    if (session.connected || session.connecting) return { json: { connected: session.connected } };
    if (json.op === "mqtt.login") {
      // The CONNECT as the firmware's client would send it: its client id, user name and password.
      const login = { clientId: String(json.id), username: String(json.user), password: String(json.password) };
      return this.#connectLater(boot, session, { clientId: login.clientId, connectTimeout: 10_000, login: () => login }, "MQTT login");
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
    return this.#connectLater(boot, session, options, "MQTT over TLS");
  }

  /** As a device's network task would: keep trying until the broker takes the session. */
  #connectLater(boot: BootHandle, session: { connecting: boolean; connected: boolean }, options: NodeMqttOptions, what: string): Reply {
    session.connecting = true;
    void (async () => {
      for (let attempt = 1; !boot.closed; attempt++) {
        try {
          const mqtt = await NodeMqtt.connect(this.o.brokerUrl, options);
          if (boot.closed) return void (await mqtt.close());
          session.connected = true;
          boot.attachMqtt(mqtt);
          return;
        } catch (e) {
          if (attempt === 1) boot.note(`${what}: ${e instanceof Error ? e.message : String(e)}`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    })().finally(() => (session.connecting = false));
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
