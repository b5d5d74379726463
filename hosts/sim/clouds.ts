/**
 * Every cloud by name, for what is provisioned as data (the simulator's device identity, the
 * `xs-ota sim --cloud` flag). A device app imports its own cloud's preset instead, so that only
 * that cloud is linked. A new cloud: its folder in modules/, one entry below, its local-cloud service.
 */
import type { CloudPreset } from "../../modules/agent/cloud.ts";
import { awsCloud, type AwsCloudOptions } from "../../modules/aws/preset.ts";
import { enosCloud, type EnosCloudOptions } from "../../modules/enos/preset.ts";

export type CloudIdentity = ({ kind: "aws" } & AwsCloudOptions) | ({ kind: "enos" } & EnosCloudOptions);

export function cloudPreset(identity: CloudIdentity): CloudPreset {
  return identity.kind === "enos" ? enosCloud(identity) : awsCloud(identity);
}
