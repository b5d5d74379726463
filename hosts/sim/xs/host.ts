/**
 * What a firmware image for the simulator imports as `xs-ota/sim/host`: the board's ports over
 * the bridge, and the identity the device was provisioned with (thing name, cloud, code-signing
 * keys, agent settings), as a device reads them from NVS. Runs inside XS.
 *
 *   import { startSimAgent } from "xs-ota/sim/host";
 *   startSimAgent({ selfTest: () => sensorsRespond() });
 */
import type { PartitionExtent } from "../partitions.ts";
import { SimPartitions } from "../partitions.ts";
import { PemKeyStore } from "./key-store.ts";
import { layoutOf, type BoardName } from "../layouts.ts";
import { nobleVerifier } from "../../../modules/verify/noble-signature.ts";
import { startAgent, type Agent, type AgentApp, type AgentConfig, type AgentPorts } from "../../../modules/agent/index.ts";
import { cloudPreset } from "../clouds.ts";
import type { EnosCloudOptions } from "../../../modules/enos/preset.ts";
import { call, pump } from "./bridge.ts";
import { BridgedFlash } from "./flash.ts";
import { BridgedHttp } from "./http.ts";
import { BridgedMqtt } from "./mqtt.ts";
import { BridgedClock } from "./clock.ts";
import { BridgedStateStore } from "./state-store.ts";
import { bridgedDigests } from "./digest.ts";
import { BridgedSystem } from "./system.ts";

export type SimCloud = { kind: "aws" } | ({ kind: "enos" } & EnosCloudOptions);

/** How the device was provisioned; the host answers it at every boot. */
export interface SimIdentity {
  thing: string;
  /** The simulated board (hosts/sim/layouts.ts): its image format and boot control. */
  board: BoardName;
  /** The version of the image the bootloader started, as its header (or program) says. */
  version: string;
  cloud: SimCloud;
  /** Code-signing public keys (PEM) by certfile label. */
  keys: Record<string, string>;
  /** Agent settings (the HTTPS CA among them). */
  config: Partial<AgentConfig>;
  /** The flash layout and the slot the bootloader started. */
  table: PartitionExtent[];
  running: string;
  /** Whether the host's MQTT session is up at boot. */
  connected: boolean;
}

export interface SimBoard {
  ports: AgentPorts;
  identity: SimIdentity;
}

// The host runs `__sim.pump()` whenever events wait and this machine is idle.
(globalThis as Record<string, unknown>).__sim = { pump };

let board: SimBoard | undefined;

/** The ports of this simulated board (made once per boot). */
export function simBoard(): SimBoard {
  if (board) return board;
  const identity = call("device.identity").json.identity as SimIdentity;
  const partitions = new SimPartitions(new BridgedFlash(), identity.table, identity.running);
  const layout = layoutOf(identity.board);
  const ports: AgentPorts = {
    partitions,
    boot: layout.boot(partitions),
    image: layout.format(identity.table),
    store: new BridgedStateStore(),
    clock: new BridgedClock(),
    http: new BridgedHttp(),
    mqtt: new BridgedMqtt(),
    digests: bridgedDigests,
    verifier: nobleVerifier,
    keys: new PemKeyStore(identity.thing, identity.keys),
    system: new BridgedSystem(identity.version),
  };
  board = { ports, identity };
  return board;
}

/** Starts the update agent for the cloud this device was provisioned for. */
export function startSimAgent(app: AgentApp, config: Partial<AgentConfig> = {}): Agent {
  const { ports, identity } = simBoard();
  const cloud = identity.cloud;
  const preset = cloudPreset(cloud.kind === "aws" ? { kind: "aws", thing: identity.thing } : cloud);
  return startAgent({ ports, app, config: { ...identity.config, ...config }, connected: identity.connected, cloud: preset });
}
