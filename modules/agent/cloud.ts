/**
 * A cloud as the agent is started with it: a preset (modules/<cloud>/preset.ts) that makes
 * that cloud's JobChannel over the device's ports. The agent, its config and the hosts name no
 * cloud; an app imports the preset of the cloud it uses, and only that cloud's code is linked.
 */
import type { AgentPorts } from "./agent.ts";
import type { JobChannel } from "./channel.ts";
import type { AgentConfig } from "./config.ts";

export interface ChannelContext {
  ports: AgentPorts;
  config: AgentConfig;
  /** The largest image the update slot holds. */
  maxSize: number;
  /** What could not be reported (a refusal, a timeout); the agent carries on. */
  log(message: string): void;
}

export interface CloudPreset {
  /** For logs: "aws", "enos". */
  readonly name: string;
  channel(context: ChannelContext): JobChannel;
}
