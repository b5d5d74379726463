/**
 * Embedding the agent: an app hands over its ports, a self-test and its cloud's preset.
 *
 *   // awsCloud comes from xs-ota/aws/preset (modules/aws/preset.ts)
 *   const agent = startAgent({ ports, app: { selfTest: () => sensorsOk() }, cloud: awsCloud({ thing: "dev-1" }) });
 *
 * It routes the MQTT session's messages to the cloud's channel and its reconnects to the agent,
 * boots the agent, and (if the MQTT connection is up already) tells it so. Everything else
 * happens in the agent's transition table.
 */
import { Agent, type AgentApp, type AgentPorts } from "./agent.ts";
import type { CloudPreset } from "./cloud.ts";
import { DEFAULT_CONFIG, type AgentConfig } from "./config.ts";

export interface StartOptions {
  ports: AgentPorts;
  app: AgentApp;
  cloud: CloudPreset;
  config?: Partial<AgentConfig>;
  /** Whether the MQTT connection is up already (default true). */
  connected?: boolean;
}

export function startAgent(o: StartOptions): Agent {
  const config = { ...DEFAULT_CONFIG, ...o.config };
  const maxSize = o.ports.partitions.open(o.ports.boot.info().updateSlot).status().size;
  const channel = o.cloud.channel({ ports: o.ports, config, maxSize, log: (m) => o.ports.system.log("warn", m) });
  const agent = new Agent({ ports: o.ports, app: o.app, channel, config });
  o.ports.mqtt.onMessage((topic, payload) => channel.handle(topic, payload));
  o.ports.mqtt.onConnectionChange((up) => (up ? agent.dispatch({ type: "connected" }) : undefined));
  agent.dispatch({ type: "boot" });
  if (o.connected ?? true) agent.dispatch({ type: "connected" });
  return agent;
}

export { Agent, type AgentApp, type AgentPorts, type AgentConfig, type CloudPreset };
export type { MqttLogin } from "./cloud.ts";
