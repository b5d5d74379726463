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
import type { Io } from "./main.ts";
import { waitForSignal } from "./signals.ts";
import { startCloud, DEFAULT_CONTROL_PORT, DEFAULT_HTTPS_PORT, DEFAULT_MQTT_PORT, DEFAULT_MQTTS_PORT, type Cloud } from "../cloud/server.ts";

const USAGE = "usage: xs-ota cloud [--data DIR] [--mqtt-port N | --broker URL] [--mqtts-port N] [--control-port N] [--https-port N] [--files-origin URL]";

export interface CloudCommandHooks {
  /** Resolves when the cloud should stop; default SIGINT or SIGTERM. */
  stopped?: (cloud: Cloud) => Promise<void>;
}

export async function cloudCommand(args: string[], io: Io, hooks: CloudCommandHooks = {}): Promise<number> {
  let dataDir = ".xs-ota-cloud";
  let brokerUrl: string | undefined;
  let filesOrigin: string | undefined;
  const embeddedOnly = new Set<string>();
  const ports: Record<string, number> = {
    "mqtt-port": DEFAULT_MQTT_PORT,
    "mqtts-port": DEFAULT_MQTTS_PORT,
    "control-port": DEFAULT_CONTROL_PORT,
    "https-port": DEFAULT_HTTPS_PORT,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    const v = args[i + 1];
    if (a === "--data" && v !== undefined) {
      dataDir = v;
      i++;
    } else if (a === "--files-origin" && v !== undefined) {
      if (!/^https:\/\/[^/?#]+$/.test(v)) {
        io.err(`xs-ota cloud: --files-origin takes an origin such as https://127.0.0.1:9443, got ${v}`);
        return 2;
      }
      filesOrigin = v;
      i++;
    } else if (a === "--broker" && v !== undefined) {
      brokerUrl = v;
      i++;
    } else if (a.startsWith("--") && a.slice(2) in ports && v !== undefined) {
      const n = /^[0-9]{1,5}$/.test(v) ? Number(v) : NaN;
      if (!(n >= 0 && n <= 65535)) {
        io.err(`xs-ota cloud: ${a} takes a port number, got ${v}`);
        return 2;
      }
      ports[a.slice(2)] = n;
      if (a === "--mqtt-port" || a === "--mqtts-port") embeddedOnly.add(a);
      i++;
    } else {
      io.err(`xs-ota cloud: ${a === "--data" || a === "--broker" || a === "--files-origin" || Object.hasOwn(ports, a.slice(2)) ? `${a} needs a value` : `unexpected argument '${a}'`}`);
      io.err(USAGE);
      return 2;
    }
  }
  if (brokerUrl !== undefined && embeddedOnly.size > 0) {
    const flag = [...embeddedOnly][0] ?? "--mqtt-port";
    io.err(`xs-ota cloud: --broker and ${flag} exclude each other (${flag} is the embedded broker's port)`);
    io.err(USAGE);
    return 2;
  }
  if (brokerUrl !== undefined && !/^(mqtts?|wss?|tcp|ssl):\/\/[^/]/.test(brokerUrl)) {
    io.err(`xs-ota cloud: --broker takes a URL such as mqtt://127.0.0.1:1883, got ${brokerUrl}`);
    io.err(USAGE);
    return 2;
  }
  const broker = brokerUrl !== undefined ? { brokerUrl } : { mqttPort: ports["mqtt-port"], mqttsPort: ports["mqtts-port"] };
  let cloud: Cloud;
  try {
    cloud = await startCloud({ dataDir, ...broker, controlPort: ports["control-port"], httpsPort: ports["https-port"], ...(filesOrigin !== undefined ? { filesOrigin } : {}) });
  } catch (e) {
    io.err(`error: cannot start the cloud: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  io.out(`mqtt     ${cloud.urls.mqtt}${brokerUrl !== undefined ? "  (external broker: devices must subscribe to the answer topics)" : ""}`);
  if (cloud.urls.mqtts !== undefined) io.out(`mqtts    ${cloud.urls.mqtts}  (mutual TLS: thing certificates from xs-ota thing create)`);
  io.out(`https    ${cloud.urls.https}  (CA: ${cloud.caPath})`);
  io.out(`http     ${cloud.urls.http}  (EnOS HTTP broker: device login and file download)`);
  io.out(`control  ${cloud.urls.control}`);
  io.out(`data     ${dataDir}`);
  await (hooks.stopped ? hooks.stopped(cloud) : waitForSignal());
  await cloud.close();
  io.out("cloud stopped");
  return 0;
}
