/**
 * A cloud as the agent is started with it: a preset (modules/<cloud>/preset.ts) that makes
 * that cloud's JobChannel over the device's ports. The agent, its config and the hosts name no
 * cloud; an app imports the preset of the cloud it uses, and only that cloud's code is linked.
 */
import type { AgentPorts } from "./agent.ts";
import type { JobChannel } from "./channel.ts";
import type { AgentConfig } from "./config.ts";
import type { DigestFactory } from "../ports/digest.ts";

/** What a host's MQTT CONNECT carries for clouds that log devices in by password (EnOS). */
export interface MqttLogin {
  clientId: string;
  username: string;
  password: string;
}

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
  /**
   * The CONNECT fields for a login at `wallTime` (Unix ms), made again for every connection
   * (EnOS signs the time). Absent: the host connects with its own client id and no password
   * (AWS IoT: the thing name and its TLS certificate).
   */
  mqttLogin?(wallTime: number, digests: DigestFactory): MqttLogin;
}
