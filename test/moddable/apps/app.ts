/**
 * The test firmware: an app as an ESP32 Moddable app would be written, built for the XS test
 * engine with Moddable's modules replaced by the stand-ins in test/moddable/fakes. It reads its
 * provisioning from mc/config, names its network providers, and starts the agent through the
 * esp32 host with a self-test.
 */
import config from "mc/config";
import HTTPClient from "embedded:network/http/client";
import MQTTClient from "embedded:network/mqtt/client";
import TCP from "embedded:io/socket/tcp";
import TLSSocket from "embedded:io/socket/tcp/tls";
import { esp32Board, startEsp32Agent, type Esp32BoardOptions } from "../../../hosts/esp32/host.ts";
import { awsCloud } from "../../../modules/aws/preset.ts";
import { enosCloud } from "../../../modules/enos/preset.ts";
import type { AgentPorts } from "../../../modules/agent/index.ts";

type Provisioning = Pick<Esp32BoardOptions, "thing" | "keys" | "mqtt"> & { ca?: string; enos?: { productKey: string; deviceSecret: string; fileService: string } };

function provisioning(): Provisioning {
  const c: Record<string, unknown> = config;
  const mqtt = c.mqtt as Provisioning["mqtt"] | undefined;
  if (typeof c.thing !== "string" || typeof c.keys !== "object" || !c.keys || typeof mqtt?.host !== "string") throw new Error("mc/config lacks thing, keys or mqtt.host");
  return { thing: c.thing, keys: c.keys as Record<string, string>, ca: typeof c.ca === "string" ? c.ca : undefined, mqtt, enos: c.enos as Provisioning["enos"] };
}

export function runTestApp(selfTest: (ports: AgentPorts) => boolean): void {
  const dns = {};
  const tls = { io: TLSSocket, TCP: { io: TCP } };
  const p = provisioning();
  const options = {
    ...p,
    cloud: p.enos
      ? enosCloud({ productKey: p.enos.productKey, deviceKey: p.thing, deviceSecret: p.enos.deviceSecret, fileService: p.enos.fileService })
      : awsCloud({ thing: p.thing }),
    network: {
      http: { io: HTTPClient, dns, socket: { io: TCP } },
      https: { io: HTTPClient, dns, socket: tls },
      mqtt: { io: MQTTClient, dns, socket: { io: TCP } },
      mqtts: { io: MQTTClient, dns, socket: tls },
    },
  };
  const { ports } = esp32Board(options);
  ports.system.log("info", `app ${ports.system.version()} running on ${ports.partitions.running()}`);
  startEsp32Agent({
    ...options,
    // EnOS's sign is a digest, not a signature: an EnOS test device is a development device.
    config: { progressInterval: 16 * 1024, selfTestTimeout: 5000, timeout: 5000, allowUnsigned: p.enos !== undefined },
    app: {
      selfTest: () => {
        const ok = selfTest(ports);
        ports.system.log(ok ? "info" : "error", `self-test ${ok ? "passed" : "failed"}`);
        return ok;
      },
    },
  });
}

/** What a real app checks after an update: its storage keeps a record and time moves. */
export function storageAndClockRespond(ports: AgentPorts): boolean {
  ports.store.set("selftest", Uint8Array.of(0x5a, 0xa5));
  const back = ports.store.get("selftest");
  ports.store.delete("selftest");
  const t = ports.clock.now();
  return back !== undefined && back[0] === 0x5a && back[1] === 0xa5 && ports.store.get("selftest") === undefined && ports.clock.now() >= t;
}
