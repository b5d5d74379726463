/**
 * What a Moddable app for ESP32 imports to run the update agent: the board's ports over
 * Moddable's modules (ECMA-419 flash, Preference, crypt Digest, Timer/Time, the ECMA-419 HTTP
 * and MQTT clients, System.restart) and the ESP-IDF otadata boot control, which with the
 * rollback-enabled bootloader (hosts/esp32/sdkconfig) behaves as the simulator's.
 *
 *   import { startEsp32Agent } from "xs-ota/esp32/host";
 *   import { awsCloud } from "xs-ota/aws/preset";
 *   startEsp32Agent({ thing: "dev-1", keys: { "signer.crt": signerPem }, ca: downloadsCaPem,
 *     mqtt: { host: "xxxx-ats.iot.eu-west-1.amazonaws.com", tls: { ca, certificate, privateKey } },
 *     cloud: awsCloud({ thing: "dev-1" }), app: { selfTest: () => sensorsRespond() } });
 *
 * For EnOS: `cloud: enosCloud({ productKey, deviceKey, deviceSecret, fileService })` from
 * "xs-ota/enos/preset", and `mqtt` without `tls` (or with the server CA only): the preset signs
 * every CONNECT (EnOS's securemode 2/3 login) with the time of day, so set the clock (SNTP) first.
 *
 * Network clients come from ECMA-419 network providers (`{ io, dns, socket }`), by default the
 * ones the app's configuration put in `device.network` (`http`, `https`, `mqtt`, `mqtts`).
 */
import { OtadataBootControl } from "xs-ota/esp-idf/boot-control";
import { espIdfFormat } from "xs-ota/esp-idf/format";
import { nobleVerifier } from "xs-ota/verify/noble-signature";
import { startAgent, type Agent, type AgentApp, type AgentConfig, type AgentPorts, type CloudPreset, type MqttLogin } from "xs-ota/agent/index";
import { OtaError } from "xs-ota/errors";
import { Esp32Partitions, type Esp32PartitionOptions } from "./flash.ts";
import { Esp32StateStore } from "./state-store.ts";
import { Esp32Clock } from "./clock.ts";
import { Esp32Http, type HttpProvider } from "./http.ts";
import { Esp32Mqtt, type MqttProvider } from "./mqtt.ts";
import { esp32Digests } from "./digest.ts";
import { PemKeyStore } from "./key-store.ts";
import { Esp32System } from "./system.ts";
import type { TlsPem } from "./tls.ts";

export interface NetworkProviders {
  http?: HttpProvider;
  https?: HttpProvider;
  mqtt?: MqttProvider;
  mqtts?: MqttProvider;
}

export interface Esp32BoardOptions {
  /** Cloud identity: the AWS thing name (also the MQTT client id), or the EnOS device key. */
  thing: string;
  /** Code-signing public keys (PEM) by the label jobs name them with (`certfile`). */
  keys: Record<string, string>;
  /** The broker; `tls` for mutual TLS (AWS IoT: Amazon Root CA 1, device certificate and key). */
  mqtt: { host: string; port?: number; tls?: TlsPem; keepalive?: number; login?: () => MqttLogin };
  /** Default: `device.network`. */
  network?: NetworkProviders;
  /**
   * The cloud's preset, when it logs devices in by password (EnOS): its `mqttLogin` signs every
   * CONNECT with the time of day. Give it here too when the app makes the board before
   * `startEsp32Agent`: the MQTT session starts with the board.
   */
  cloud?: CloudPreset;
  partitions?: Esp32PartitionOptions;
}

export interface Esp32Board {
  ports: AgentPorts;
  mqtt: Esp32Mqtt;
}

let board: Esp32Board | undefined;

/** The ports of this device (made once per boot). */
export function esp32Board(o: Esp32BoardOptions): Esp32Board {
  if (board) return board;
  const network = o.network ?? defaultNetwork();
  const mqttProvider = o.mqtt.tls ? (network.mqtts ?? network.mqtt) : network.mqtt;
  if (!mqttProvider) throw new OtaError("bad-argument", "no MQTT network provider: set device.network.mqtt(s) or pass `network`");
  const partitions = new Esp32Partitions(o.partitions);
  const clock = new Esp32Clock();
  const system = new Esp32System(partitions);
  const mqtt = new Esp32Mqtt({ provider: mqttProvider, host: o.mqtt.host, port: o.mqtt.port, id: o.thing, login: o.mqtt.login ?? cloudLogin(o.cloud), tls: o.mqtt.tls, keepalive: o.mqtt.keepalive, clock, log: (m) => system.log("warn", m) });
  const ports: AgentPorts = {
    partitions,
    boot: new OtadataBootControl(partitions),
    image: espIdfFormat,
    store: new Esp32StateStore(),
    clock,
    http: new Esp32Http({ http: network.http, https: network.https }, clock),
    mqtt,
    digests: esp32Digests,
    verifier: nobleVerifier,
    keys: new PemKeyStore(o.thing, o.keys),
    system,
  };
  board = { ports, mqtt };
  return board;
}

export interface StartEsp32Options extends Esp32BoardOptions {
  app: AgentApp;
  /** PEM CA certificates trusted for https downloads (the agent's `ca`). */
  ca?: string;
  /** Agent settings; everything has a default (modules/agent/config.ts). */
  config?: Partial<AgentConfig>;
  /** The cloud's preset (xs-ota/<cloud>/preset): only that cloud's code is linked. */
  cloud: CloudPreset;
}

/** Starts the update agent; the MQTT session comes up in the background and the agent is told. */
export function startEsp32Agent(o: StartEsp32Options): Agent {
  const { ports, mqtt } = esp32Board(o);
  const config = { ...o.config, ...(o.ca !== undefined ? { ca: o.ca } : {}) };
  return startAgent({ ports, app: o.app, config, connected: mqtt.connected, cloud: o.cloud });
}

/** A password login (EnOS) made at each connect, signed with the time of day. */
function cloudLogin(cloud: CloudPreset | undefined): (() => MqttLogin) | undefined {
  const mqttLogin = cloud?.mqttLogin?.bind(cloud);
  return mqttLogin ? () => mqttLogin(Date.now(), esp32Digests) : undefined;
}

function defaultNetwork(): NetworkProviders {
  const global = globalThis as unknown as { device?: { network?: NetworkProviders } };
  return global.device?.network ?? {};
}
