/**
 * AWS IoT as the agent's cloud: jobs from AWS IoT Jobs (AWS OTA, nRF aws_fota and Zerynth
 * documents), files over presigned HTTPS URLs or the thing's MQTT streams.
 *
 *   startAgent({ ports, app, cloud: awsCloud({ thing: "dev-1" }) });
 */
import type { CloudPreset } from "../agent/cloud.ts";
import { AwsJobChannel } from "./channel.ts";

export interface AwsCloudOptions {
  /** The thing name: job and stream topics are under `$aws/things/<thing>/`. */
  thing: string;
}

export function awsCloud(o: AwsCloudOptions): CloudPreset {
  return {
    name: "aws",
    channel: (c) =>
      new AwsJobChannel({
        mqtt: c.ports.mqtt,
        clock: c.ports.clock,
        thing: o.thing,
        maxSize: c.maxSize,
        allowUnsigned: c.config.allowUnsigned,
        preferProtocol: c.config.preferProtocol,
        log: c.log,
      }),
  };
}
