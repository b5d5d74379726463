/**
 * Embedding the agent: an app hands over its ports, a self-test and its cloud identity.
 *
 *   const agent = startAwsAgent({ ports, app: { selfTest: () => sensorsOk() }, config: { thing: "dev-1" } });
 *
 * It wires MQTT messages and reconnects to the agent, boots it, and (if the MQTT connection is up
 * already) tells it so. Everything else happens in the agent's transition table.
 */
import { Agent, type AgentApp, type AgentPorts } from "./agent.ts";
import { AwsJobChannel } from "./aws-channel.ts";
import { EnosJobChannel } from "./enos-channel.ts";
import type { JobChannel } from "./channel.ts";
import { DEFAULT_CONFIG, type AgentConfig } from "./config.ts";

export interface StartOptions {
  ports: AgentPorts;
  app: AgentApp;
  config: Partial<AgentConfig> & { thing: string };
  /** Whether the MQTT connection is up already (default true). */
  connected?: boolean;
}

function updateSlotSize(ports: AgentPorts): number {
  return ports.partitions.open(ports.boot.info().updateSlot).status().size;
}

export function startAgent(o: StartOptions, channel: JobChannel): Agent {
  const agent = new Agent({ ports: o.ports, app: o.app, channel, config: o.config });
  o.ports.mqtt.onMessage((topic, payload) => agent.handleMessage(topic, payload));
  o.ports.mqtt.onConnectionChange((up) => (up ? agent.dispatch({ type: "connected" }) : undefined));
  agent.dispatch({ type: "boot" });
  if (o.connected ?? true) agent.dispatch({ type: "connected" });
  return agent;
}

export function startAwsAgent(o: StartOptions): Agent {
  const config = { ...DEFAULT_CONFIG, ...o.config };
  const channel = new AwsJobChannel({
    mqtt: o.ports.mqtt,
    clock: o.ports.clock,
    thing: config.thing,
    maxSize: updateSlotSize(o.ports),
    allowUnsigned: config.allowUnsigned,
    preferProtocol: config.preferProtocol,
    log: (m) => o.ports.system.log("warn", m),
  });
  return startAgent(o, channel);
}

export function startEnosAgent(o: StartOptions & { productKey: string; deviceKey: string; fileBase?: string }): Agent {
  const config = { ...DEFAULT_CONFIG, ...o.config };
  const channel = new EnosJobChannel({
    mqtt: o.ports.mqtt,
    clock: o.ports.clock,
    productKey: o.productKey,
    deviceKey: o.deviceKey,
    fileBase: o.fileBase,
    maxSize: updateSlotSize(o.ports),
    allowUnsigned: config.allowUnsigned,
    version: () => o.ports.system.version(),
    log: (m) => o.ports.system.log("warn", m),
  });
  return startAgent(o, channel);
}

export { Agent, type AgentApp, type AgentPorts, type AgentConfig };
