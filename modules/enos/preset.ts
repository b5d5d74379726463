/**
 * EnOS as the agent's cloud: upgrade pushes on the device's OTA topics, files over HTTP(S) or
 * through the EnOS HTTP broker's file download, and the device's MQTT login.
 *
 *   startAgent({ ports, app, cloud: enosCloud({ productKey: "pk", deviceKey: "dk",
 *     deviceSecret: "...", fileService: "https://iot-http.example.com" }) });
 *
 * With a device secret (or a product secret: securemode 3) `mqttLogin` gives the CONNECT fields
 * the host logs in with; `fileService` plus the device secret fetch `enos-connect://` offers and
 * relative paths; `fileBase` instead resolves relative paths to plain URLs (no login).
 */
import type { CloudPreset } from "../agent/cloud.ts";
import { EnosJobChannel } from "./channel.ts";
import { EnosFileService } from "./files.ts";
import { enosMqttLogin } from "./login.ts";

export interface EnosCloudOptions {
  productKey: string;
  deviceKey: string;
  /** Static activation: the device's secret (MQTT securemode 2, and the HTTP broker's login). */
  deviceSecret?: string;
  /** Dynamic activation: the product's secret (MQTT securemode 3), when there is no device secret. */
  productSecret?: string;
  /** The identifier in the MQTT client id; default the device key. */
  clientId?: string;
  /** The EnOS HTTP broker (origin URL): where enos-connect:// files and relative paths are fetched. */
  fileService?: string;
  /** Base URL a relative fileUrl is resolved against instead, fetched without a login. */
  fileBase?: string;
  /** The HTTP session's lifetime, ms (default 300000). */
  sessionLifetime?: number;
}

export function enosCloud(o: EnosCloudOptions): CloudPreset {
  const credentials = { productKey: o.productKey, deviceKey: o.deviceKey, deviceSecret: o.deviceSecret, productSecret: o.productSecret, clientId: o.clientId };
  const preset: CloudPreset = {
    name: "enos",
    channel: (c) =>
      new EnosJobChannel({
        mqtt: c.ports.mqtt,
        clock: c.ports.clock,
        files:
          o.fileService === undefined
            ? undefined
            : new EnosFileService({ http: c.ports.http, clock: c.ports.clock, digests: c.ports.digests, credentials, service: o.fileService, lifetime: o.sessionLifetime, ca: c.config.ca, timeout: c.config.timeout }),
        productKey: o.productKey,
        deviceKey: o.deviceKey,
        fileBase: o.fileBase,
        maxSize: c.maxSize,
        allowUnsigned: c.config.allowUnsigned,
        version: () => c.ports.system.version(),
        log: c.log,
      }),
  };
  if (o.deviceSecret !== undefined || o.productSecret !== undefined) {
    preset.mqttLogin = (wallTime, digests) => enosMqttLogin(credentials, wallTime, digests);
  }
  return preset;
}
