/**
 * A simulated ESP32 for end-to-end tests: NOR flash with otadata and two slots, the simulated
 * bootloader, durable state, and the real agent over the desktop host's ports (NodeMqtt to a real
 * broker, NodeHttp, node:crypto). `restart()` from the agent reboots it: the bootloader picks a
 * slot and a fresh agent starts on it, as firmware would after a reset.
 */
import { NodeMqtt } from "../../hosts/sim/mqtt.ts";
import { NodeHttp } from "../../hosts/sim/http.ts";
import { NodeClock } from "../../hosts/sim/clock.ts";
import { nodeDigests } from "../../hosts/sim/node-digest.ts";
import { MemoryStateStore } from "../../hosts/sim/state-store.ts";
import { PemKeyStore } from "../../modules/verify/pem-key-store.ts";
import { nobleVerifier } from "../../modules/verify/noble-signature.ts";
import { parseImagePrefix } from "../../modules/esp-idf/image.ts";
import { espIdfFormat } from "../../modules/esp-idf/format.ts";
import type { System, LogLevel } from "../../modules/ports/system.ts";
import type { Mqtt } from "../../modules/ports/mqtt.ts";
import type { Http } from "../../modules/ports/http.ts";
import { startAgent, type Agent } from "../../modules/agent/index.ts";
import { cloudPreset, type CloudIdentity } from "../../hosts/sim/clouds.ts";
import type { AgentConfig } from "../../modules/agent/config.ts";
import { MiniDevice } from "../contract/boot-fixture.ts";

export interface SimDeviceOptions {
  thing: string;
  brokerUrl: string;
  /** For an mqtts:// broker: the CA and the thing's client certificate and key (PEM). */
  tls?: { ca: string; cert: string; key: string };
  keys: Record<string, string>;
  /** Self-test result per firmware version (default: passes). */
  selfTest?: (version: string) => boolean | Promise<boolean>;
  config?: Partial<AgentConfig>;
  cloud?: CloudIdentity;
  /** What the agent gets instead of the MQTT session itself (e.g. one that skips some subscriptions). */
  wrapMqtt?: (mqtt: NodeMqtt) => Mqtt;
  /** What the agent gets instead of the HTTP client (e.g. one that acts between requests). */
  wrapHttp?: (http: Http) => Http;
}

export class SimDevice {
  readonly device = MiniDevice.fresh({ strict: true }, "1.0.0");
  readonly store = new MemoryStateStore();
  readonly logs: string[] = [];
  agent: Agent | undefined;
  mqtt: NodeMqtt | undefined;
  boots = 0;
  #rebooting: Promise<void> | undefined;

  constructor(readonly o: SimDeviceOptions) {}

  get version(): string {
    const slot = this.device.partitions.open(this.device.partitions.running());
    return parseImagePrefix(new Uint8Array(slot.read(288, 0))).desc.version;
  }

  async start(): Promise<void> {
    this.boots++;
    const cloud = cloudPreset(this.o.cloud ?? { kind: "aws", thing: this.o.thing });
    const login = cloud.mqttLogin?.bind(cloud);
    this.mqtt = await NodeMqtt.connect(this.o.brokerUrl, { clientId: `${this.o.thing}-${this.boots}`, ...this.o.tls, login: login ? () => login(Date.now(), nodeDigests) : undefined });
    const system: System = {
      restart: () => void (this.#rebooting = this.reboot()),
      version: () => this.version,
      freeMemory: () => undefined,
      log: (level: LogLevel, message: string) => this.logs.push(`${level}: ${message}`),
    };
    const ports = {
      partitions: this.device.partitions,
      boot: this.device.boot,
      image: espIdfFormat,
      store: this.store,
      clock: new NodeClock(),
      http: this.o.wrapHttp ? this.o.wrapHttp(new NodeHttp()) : new NodeHttp(),
      mqtt: this.o.wrapMqtt ? this.o.wrapMqtt(this.mqtt) : this.mqtt,
      digests: nodeDigests,
      verifier: nobleVerifier,
      keys: new PemKeyStore(this.o.thing, this.o.keys),
      system,
    };
    const app = { selfTest: () => (this.o.selfTest ? this.o.selfTest(this.version) : true) };
    const config = { blockSize: 1024, progressInterval: 8192, recordInterval: 4096, selfTestTimeout: 2000, timeout: 2000, requestTimeout: 1000, ...this.o.config };
    this.agent = startAgent({ ports, app, config, cloud });
  }

  /** Power gone: the agent stops where it is, the connection drops; flash and state stay. */
  async powerCut(): Promise<void> {
    this.agent?.stop();
    await this.mqtt?.close();
  }

  /** A reset: power cut, the bootloader runs, the firmware it picks starts again. */
  async reboot(): Promise<void> {
    await this.powerCut();
    if (this.device.restart() === undefined) throw new Error("the device does not boot");
    await this.start();
  }

  async settled(): Promise<void> {
    while (this.#rebooting) {
      const r = this.#rebooting;
      await r;
      if (this.#rebooting === r) this.#rebooting = undefined;
    }
  }
}

/** Polls until `condition` holds (or fails after `ms`). */
export async function until(condition: () => boolean, ms = 10_000, what = "condition"): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
