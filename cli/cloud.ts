/**
 * xs-ota cloud [--data DIR] [--mqtt-port N | --broker URL] [--mqtts-port N] [--control-port N] [--https-port N] [--files-origin URL]
 *
 * Runs the local cloud (cloud/server.ts): broker, AWS Jobs + streams, HTTPS files, EnOS, and the
 * control API that `xs-ota job create|list|describe` talks to. Runs until SIGINT/SIGTERM.
 * By default the broker is embedded (aedes on 127.0.0.1:--mqtt-port); `--broker URL` uses an
 * external one instead (e.g. Mosquitto: --broker mqtt://127.0.0.1:1883), so there is no MQTT
 * port of its own and --mqtt-port is refused with it. Only the embedded broker answers as AWS IoT
 * Core does on reserved topics (a Jobs or stream answer reaches the client that asked, subscribed
 * or not); on an external broker a device gets answers only on topics it subscribed to, which
 * AWS's own C OTA agent does not do. `--https-port 443` gives presigned URLs without a port, as
 * S3's are (binding 443 needs root or CAP_NET_BIND_SERVICE). `--files-origin https://HOST:PORT`
 * makes presigned URLs name that origin instead, e.g. a proxy in front of the file server (the
 * link model of bench:device); HOST must be one the server certificate names (127.0.0.1, localhost).
 * The embedded broker also takes MQTT over mutual TLS on --mqtts-port (default 8883, as AWS IoT
 * Core): devices present a thing certificate from `xs-ota thing create` (same --data) and may use
 * only their own thing's `$aws/things/<thing>/...` topics; `--broker` has no such listener.
 */
import { resolve } from "node:path";
import type { Io } from "./main.ts";
import { withArgs, type Args, type CommandSpec } from "./args.ts";
import { DEFAULT_DATA, endpointPath, removeEndpoint, writeEndpoint } from "./endpoint.ts";
import { waitForSignal } from "./signals.ts";
import { startCloud, DEFAULT_CONTROL_PORT, DEFAULT_HTTPS_PORT, DEFAULT_MQTT_PORT, DEFAULT_MQTTS_PORT, type Cloud } from "../cloud/server.ts";

export const CLOUD: CommandSpec = {
  name: "cloud",
  usage: ["cloud [--data DIR] [--mqtt-port N | --broker URL] [--mqtts-port N] [--control-port N] [--https-port N] [--files-origin URL]"],
  about: [
    "Runs the local cloud: MQTT broker, AWS IoT Jobs and streams, HTTPS files, EnOS, and the control API of `xs-ota job`.",
    "Runs until Ctrl-C; while it runs, DIR/cloud.json says where it listens (job, enos and sim find it there).",
  ],
  options: {
    data: { type: "string", value: "DIR", description: "the cloud's data folder (default .xs-ota-cloud)" },
    "mqtt-port": { type: "string", value: "N", description: `the embedded broker's port (default ${DEFAULT_MQTT_PORT})` },
    broker: { type: "string", value: "URL", description: "use this external broker instead of the embedded one (e.g. mqtt://127.0.0.1:1883)" },
    "mqtts-port": { type: "string", value: "N", description: `MQTT over mutual TLS (default ${DEFAULT_MQTTS_PORT})` },
    "control-port": { type: "string", value: "N", description: `the control API (default ${DEFAULT_CONTROL_PORT})` },
    "https-port": { type: "string", value: "N", description: `the HTTPS file server (default ${DEFAULT_HTTPS_PORT})` },
    "files-origin": { type: "string", value: "URL", description: "the origin presigned URLs name, e.g. a proxy (https://HOST:PORT)" },
  },
};

export interface CloudCommandHooks {
  /** Resolves when the cloud should stop; default SIGINT or SIGTERM. */
  stopped?: (cloud: Cloud) => Promise<void>;
}

export async function cloudCommand(args: string[], io: Io, hooks: CloudCommandHooks = {}): Promise<number> {
  return withArgs(CLOUD, args, io, (a) => runCloud(a, io, hooks));
}

async function runCloud(a: Args, io: Io, hooks: CloudCommandHooks): Promise<number> {
  const dataDir = a.string("data") ?? DEFAULT_DATA;
  const brokerUrl = a.string("broker");
  const filesOrigin = a.string("files-origin");
  if (filesOrigin !== undefined && !/^https:\/\/[^/?#]+$/.test(filesOrigin)) a.fail(`--files-origin takes an origin such as https://127.0.0.1:9443, got ${filesOrigin}`);
  const embeddedOnly = new Set<string>();
  const ports: Record<string, number> = {
    "mqtt-port": DEFAULT_MQTT_PORT,
    "mqtts-port": DEFAULT_MQTTS_PORT,
    "control-port": DEFAULT_CONTROL_PORT,
    "https-port": DEFAULT_HTTPS_PORT,
  };
  for (const name of Object.keys(ports)) {
    const v = a.string(name);
    if (v === undefined) continue;
    const n = /^[0-9]{1,5}$/.test(v) ? Number(v) : NaN;
    if (!(n >= 0 && n <= 65535)) a.fail(`--${name} takes a port number, got ${v}`);
    ports[name] = n;
    if (name === "mqtt-port" || name === "mqtts-port") embeddedOnly.add(`--${name}`);
  }
  if (brokerUrl !== undefined && embeddedOnly.size > 0) {
    const flag = [...embeddedOnly][0] ?? "--mqtt-port";
    a.fail(`--broker and ${flag} exclude each other (${flag} is the embedded broker's port)`);
  }
  if (brokerUrl !== undefined && !/^(mqtts?|wss?|tcp|ssl):\/\/[^/]/.test(brokerUrl)) {
    a.fail(`--broker takes a URL such as mqtt://127.0.0.1:1883, got ${brokerUrl}`);
  }
  const broker = brokerUrl !== undefined ? { brokerUrl } : { mqttPort: ports["mqtt-port"], mqttsPort: ports["mqtts-port"] };
  let cloud: Cloud;
  try {
    cloud = await startCloud({ dataDir, ...broker, controlPort: ports["control-port"], onEvent: (line) => io.out(line), httpsPort: ports["https-port"], ...(filesOrigin !== undefined ? { filesOrigin } : {}) });
  } catch (e) {
    io.err(`error: cannot start the cloud: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  io.out(`mqtt     ${cloud.urls.mqtt}${brokerUrl !== undefined ? "  (external broker: devices must subscribe to the answer topics)" : ""}`);
  if (cloud.urls.mqtts !== undefined) io.out(`mqtts    ${cloud.urls.mqtts}  (mutual TLS: thing certificates from xs-ota thing create)`);
  io.out(`https    ${cloud.urls.https}  (CA: ${cloud.caPath})`);
  io.out(`http     ${cloud.urls.http}  (EnOS HTTP broker: device login and file download)`);
  io.out(`control  ${cloud.urls.control}  (dashboard: ${cloud.urls.control}/)`);
  io.out(`data     ${dataDir}`);
  // Where it listens, for the commands that talk to it; removed again when it stops.
  const endpoint = { pid: process.pid, control: cloud.urls.control, mqtt: cloud.urls.mqtt, ...(cloud.urls.mqtts !== undefined ? { mqtts: cloud.urls.mqtts } : {}), https: cloud.urls.https, http: cloud.urls.http, ca: resolve(cloud.caPath) };
  try {
    writeEndpoint(dataDir, endpoint);
  } catch (e) {
    io.err(`warning: cannot write ${endpointPath(dataDir)}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    await (hooks.stopped ? hooks.stopped(cloud) : waitForSignal());
  } finally {
    removeEndpoint(dataDir);
    await cloud.close();
  }
  io.out("cloud stopped");
  return 0;
}
