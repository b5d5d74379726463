/**
 * EnOS as the agent's cloud: upgrade pushes on the device's OTA topics, files over HTTP(S).
 *
 *   startAgent({ ports, app, cloud: enosCloud({ productKey: "pk", deviceKey: "dk" }) });
 */
import type { CloudPreset } from "../agent/cloud.ts";
import { EnosJobChannel } from "./channel.ts";

export interface EnosCloudOptions {
  productKey: string;
  deviceKey: string;
  /** Base URL for a relative fileUrl (the EnOS file service). */
  fileBase?: string;
}

export function enosCloud(o: EnosCloudOptions): CloudPreset {
  return {
    name: "enos",
    channel: (c) =>
      new EnosJobChannel({
        mqtt: c.ports.mqtt,
        clock: c.ports.clock,
        productKey: o.productKey,
        deviceKey: o.deviceKey,
        fileBase: o.fileBase,
        maxSize: c.maxSize,
        allowUnsigned: c.config.allowUnsigned,
        version: () => c.ports.system.version(),
        log: c.log,
      }),
  };
}
