/**
 * The example app: starts the xs-ota agent for AWS IoT Jobs with a self-test. Its thing name and
 * broker come from the manifest's config, its keys from ./keys (see README.md). After an update
 * the new firmware runs `selfTest` once; true confirms it, false (or a restart before it answers)
 * rolls the device back to the firmware it came from, which reports the job FAILED.
 */
import config from "mc/config";
import Resource from "Resource";
import { esp32Board, startEsp32Agent } from "xs-ota/esp32/host";
import type { AgentPorts } from "xs-ota/agent/index";
import { awsCloud } from "xs-ota/aws/preset";
import { networkProviders } from "./network.ts";

function setting(name: string): string {
  const value: unknown = (config as Record<string, unknown>)[name];
  if (typeof value !== "string" && typeof value !== "number") throw new Error(`manifest config lacks "${name}"`);
  return String(value);
}

function pem(name: string): string {
  if (!Resource.exists(name)) throw new Error(`keys/${name} is missing: see README.md`);
  return String.fromArrayBuffer(new Resource(name).slice(0));
}

/** What this app checks after an update: its storage keeps a record and its clock runs. */
function selfTest(ports: AgentPorts): boolean {
  ports.store.set("selftest", Uint8Array.of(0x5a, 0xa5));
  const back = ports.store.get("selftest");
  ports.store.delete("selftest");
  const start = ports.clock.now();
  return back?.[0] === 0x5a && back[1] === 0xa5 && ports.clock.now() >= start;
}

const thing = setting("thing");
const options = {
  thing,
  // With the board, not only the agent: an EnOS preset (enosCloud from "xs-ota/enos/preset")
  // signs the MQTT session's CONNECT, which starts with the board.
  cloud: awsCloud({ thing }),
  keys: { [setting("signer")]: pem("signing-key.pub.pem") },
  ca: pem("download-ca.pem"),
  mqtt: {
    host: setting("mqttHost"),
    port: Number(setting("mqttPort")),
    tls: { ca: pem("AmazonRootCA1.pem"), certificate: pem("device.pem.crt"), privateKey: pem("private.pem.key") },
  },
  network: networkProviders(setting("dns")),
};

const { ports } = esp32Board(options);
ports.system.log("info", `firmware ${ports.system.version()} running from ${ports.partitions.running()} (${ports.boot.info().state})`);
startEsp32Agent({ ...options, app: { selfTest: () => selfTest(ports) } });
