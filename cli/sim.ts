/**
 * xs-ota sim [--thing T] [--count N] [--firmware FW.bin] [--key [LABEL=]PUB.pem]... [--allow-unsigned]
 *            [--broker URL] [--ca CA.pem] [--cert CERT.pem --cert-key KEY.pem | --certs DIR] [--dir DIR]
 *            [--cloud aws|enos] [--product PK] [--file-base URL] [--file-service URL]
 *            [--device-secret S | --product-secret S] [--until VERSION] [--flash-timing NAME]
 *            [--board esp32|w800|nuvoton]
 *
 * Simulated boards on the desktop (hosts/sim/device.ts): each has a flash file laid out by its
 * board's partition table (ESP32: partitions/esp32-4mb.csv; W800: partitions/w800-2mb.csv;
 * Nuvoton M487: partitions/nuvoton-m487.csv) and runs the firmware its bootloader starts (or
 * installs) on the XS engine. `--firmware` flashes every device first, as the vendor's flasher
 * would (the image in the board's format: `xs-ota image pack --target ...`), with `--board`
 * saying which board (default esp32); without it the devices in DIR carry on from where they were
 * (a download resumes) on the board they were flashed as. With `--count N` the things are T-1..T-N.
 * `--cloud enos` makes EnOS devices (product PK, device key = thing name) that resolve the
 * relative fileUrl of an upgrade against `--file-base` (the cloud's EnOS file endpoint). With
 * `--device-secret` (or `--product-secret`: securemode 3) they log in as EnOS devices do, and with
 * `--file-service` (the HTTP broker's URL) they fetch enos-connect:// offers and relative paths
 * through its download after a login (the device secret; `xs-ota enos register` prints it).
 * Runs until SIGINT/SIGTERM, or with `--until VERSION` until every device runs VERSION
 * confirmed and has reported the outcome (exit 0), or one cannot boot (exit 1).
 * `--flash-timing NAME` (esp32, w25q32jv, w25q32jv-max, esp32-measured; hosts/sim/flash-timing.ts)
 * makes each flash call of the firmware take the chip's erase and program time; without it flash
 * calls return at once.
 *
 * Mutual TLS (an mqtts:// --broker, e.g. `xs-ota cloud`'s mqtts URL): each device presents its
 * thing's certificate, made by `xs-ota thing create`. `--cert/--cert-key` give one device's pair
 * (no --count); `--certs DIR` gives every device its own, DIR/<thing>.cert.pem and
 * DIR/<thing>.key.pem, as `thing create` names them (its default DIR is .xs-ota-cloud/things). A
 * certificate must name the device's thing (CN), since the cloud lets a thing use its own topics
 * only. The broker is trusted through --ca (default .xs-ota-cloud/tls/ca.pem), which is also the
 * CA of the HTTPS downloads.
 */
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { InputError, checkPublicKeyFile, readCaInput, readInput } from "./files.ts";
import { withArgs, type Args, type CommandSpec } from "./args.ts";
import { DEFAULT_DATA, readEndpoint } from "./endpoint.ts";
import { publicKeyFromPem } from "../modules/verify/keys.ts";
import { join } from "node:path";
import type { Io } from "./main.ts";
import { waitForSignal } from "./signals.ts";
import { flashDevice } from "../hosts/sim/board.ts";
import { FLASH_TIMINGS, type FlashTiming } from "../hosts/sim/flash-timing.ts";
import { BOARD_NAMES, isBoardName, type BoardName } from "../hosts/sim/layouts.ts";
import { SimulatedDevice, type DeviceEvent } from "../hosts/sim/device.ts";
import type { SimCloud } from "../hosts/sim/xs/host.ts";
import { SIGNER_LABEL, DEFAULT_MQTT_PORT } from "../cloud/server.ts";

export const SIM: CommandSpec = {
  name: "sim",
  usage: [
    "sim [--thing T] [--count N] [--firmware FW.bin] [--key [LABEL=]PUB.pem]... [--allow-unsigned]",
    "    [--broker URL] [--ca CA.pem] [--cert CERT.pem --cert-key KEY.pem | --certs DIR] [--dir DIR] [--data DIR]",
    "    [--cloud aws|enos] [--product PK] [--file-base URL] [--file-service URL]",
    "    [--device-secret S | --product-secret S] [--until VERSION] [--flash-timing esp32]",
    "    [--board esp32|w800|nuvoton]",
  ],
  about: ["Simulated boards on the desktop, each running its firmware on the XS engine and updating from the cloud."],
  options: {
    thing: { type: "string", value: "T", description: "the thing name (with --count, the things are T-1..T-N; default dev-1)" },
    count: { type: "string", value: "N", description: `how many devices (1 to 200)` },
    firmware: { type: "string", value: "FW.bin", description: "flash every device with this image first (else they carry on from DIR)" },
    key: { type: "string", value: "[LABEL=]PUB.pem", multiple: true, description: "a code-signing public key the device trusts (default label signer.crt)" },
    "allow-unsigned": { type: "boolean", description: "take unsigned jobs (development devices only)" },
    broker: { type: "string", value: "URL", description: "the MQTT broker (default: the running cloud's, from DIR/cloud.json, else mqtt://127.0.0.1:1883)" },
    ca: { type: "string", value: "CA.pem", description: "the CA the broker and HTTPS downloads are trusted through (default: the cloud's)" },
    cert: { type: "string", value: "CERT.pem", description: "one device's client certificate (mqtts://)" },
    "cert-key": { type: "string", value: "KEY.pem", description: "its key" },
    certs: { type: "string", value: "DIR", description: "a folder of <thing>.cert.pem and <thing>.key.pem (xs-ota thing create)" },
    dir: { type: "string", value: "DIR", description: "where the devices' flash files live (default .xs-ota-sim)" },
    data: { type: "string", value: "DIR", description: "the cloud's data folder, for its cloud.json and CA (default .xs-ota-cloud)" },
    cloud: { type: "string", value: "aws|enos", choices: ["aws", "enos"], description: "the devices' cloud (default aws)" },
    product: { type: "string", value: "PK", description: "EnOS: the product key (default xsota)" },
    "file-base": { type: "string", value: "URL", description: "EnOS: resolves a relative fileUrl" },
    "file-service": { type: "string", value: "URL", description: "EnOS: the HTTP broker's URL, for enos-connect:// downloads" },
    "device-secret": { type: "string", value: "S", description: "EnOS: log in with the device secret" },
    "product-secret": { type: "string", value: "S", description: "EnOS: log in with the product secret (securemode 3)" },
    until: { type: "string", value: "VERSION", description: "stop once every device runs VERSION confirmed (exit 0), or one cannot boot (exit 1)" },
    "flash-timing": { type: "string", value: "NAME", choices: Object.keys(FLASH_TIMINGS), description: "make flash calls take a chip's erase and program time" },
    board: { type: "string", value: "BOARD", choices: BOARD_NAMES, description: "the board --firmware flashes (default esp32)" },
  },
};
const MAX_COUNT = 200;

export interface SimOptions {
  thing: string;
  count: number;
  firmware?: string;
  keys: Record<string, string>;
  /** The --key arguments, [LABEL=]PATH, read into `keys` before anything is flashed. */
  keyFiles: string[];
  allowUnsigned: boolean;
  broker: string;
  ca?: string;
  /** One device's client certificate and key (paths). */
  cert?: string;
  certKey?: string;
  /** A folder of <thing>.cert.pem / <thing>.key.pem. */
  certs?: string;
  dir: string;
  cloud: "aws" | "enos";
  product: string;
  fileBase?: string;
  fileService?: string;
  deviceSecret?: string;
  productSecret?: string;
  until?: string;
  /** Flash erase/program times (hosts/sim/flash-timing.ts); none by default. */
  flashTiming?: FlashTiming;
  /** The board `--firmware` flashes (hosts/sim/layouts.ts). */
  board: BoardName;
}

export interface SimCommandHooks {
  /** Resolves when the simulator should stop; default SIGINT or SIGTERM. */
  stopped?: Promise<void>;
}

function parse(a: Args): SimOptions {
  const endpoint = a.string("broker") === undefined ? readEndpoint(a.string("data") ?? DEFAULT_DATA) : undefined;
  const board = a.string("board") ?? "esp32";
  const o: SimOptions = {
    thing: a.string("thing") ?? "",
    count: 1,
    keys: {},
    keyFiles: a.list("key"),
    allowUnsigned: a.flag("allow-unsigned"),
    // A running cloud says where its broker is: its cloud.json comes before the default port.
    broker: a.string("broker") ?? endpoint?.mqtt ?? `mqtt://127.0.0.1:${DEFAULT_MQTT_PORT}`,
    dir: a.string("dir") ?? ".xs-ota-sim",
    cloud: a.string("cloud") === "enos" ? "enos" : "aws",
    product: a.string("product") ?? "xsota",
    board: isBoardName(board) ? board : "esp32",
  };
  const defaultCa = join(a.string("data") ?? DEFAULT_DATA, "tls", "ca.pem");
  const ca = a.string("ca") ?? endpoint?.ca ?? (existsSync(defaultCa) ? defaultCa : undefined);
  if (ca !== undefined) o.ca = ca;
  const strings = { cert: "cert", certKey: "cert-key", certs: "certs", fileBase: "file-base", fileService: "file-service", deviceSecret: "device-secret", productSecret: "product-secret", until: "until" } as const;
  for (const [field, option] of Object.entries(strings)) {
    const v = a.string(option);
    if (v !== undefined) o[field as keyof typeof strings] = v;
  }
  const count = a.string("count");
  if (count !== undefined) {
    o.count = /^[0-9]+$/.test(count) ? Number(count) : NaN;
    if (!(o.count >= 1 && o.count <= MAX_COUNT)) a.fail(`--count takes 1 to ${MAX_COUNT}, got ${count}`);
  }
  const timing = a.string("flash-timing");
  if (timing !== undefined) o.flashTiming = FLASH_TIMINGS[timing];
  const firmware = a.string("firmware");
  if (firmware !== undefined) o.firmware = firmware;
  const fail = (reason: string): never => a.fail(reason);
  if (o.keyFiles.length === 0 && !o.allowUnsigned) fail("give the code-signing public key (--key PUB.pem), or --allow-unsigned for a development device");
  if ((o.cert === undefined) !== (o.certKey === undefined)) fail("--cert and --cert-key go together");
  if (o.cert !== undefined && o.certs !== undefined) fail("give --cert/--cert-key (one device) or --certs DIR, not both");
  if (o.cert !== undefined && o.count > 1) fail("--cert is one thing's certificate; with --count use --certs DIR");
  if ((o.cert !== undefined || o.certs !== undefined) && !o.broker.startsWith("mqtts://")) fail(`client certificates are for an mqtts:// --broker, got ${o.broker}`);
  if (!/^[a-zA-Z0-9:_-]*$/.test(o.thing)) fail(`thing name '${o.thing}': letters, digits, ':', '_' and '-' only`);
  return o;
}

/** The --key files, each a key a device verifies with: a private key is refused before anything is flashed. */
function readKeys(files: readonly string[]): Record<string, string> {
  const keys: Record<string, string> = {};
  for (const v of files) {
    const eq = v.indexOf("=");
    const [label, path] = eq > 0 ? [v.slice(0, eq), v.slice(eq + 1)] : [SIGNER_LABEL, v];
    const pem = checkPublicKeyFile(path);
    try {
      publicKeyFromPem(pem);
    } catch (e) {
      throw new InputError(`the public key ${path}: ${(e as Error).message}`);
    }
    keys[label] = pem;
  }
  return keys;
}

function definedOnly<T extends Record<string, string | undefined>>(o: T): Partial<Record<keyof T, string>> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<Record<keyof T, string>>;
}

/** The thing's client certificate and key, read and checked against its name. */
function thingTls(o: SimOptions, thing: string, ca: string | undefined): { ca: string; cert: string; key: string } | undefined {
  const [certPath, keyPath] = o.certs !== undefined ? [join(o.certs, `${thing}.cert.pem`), join(o.certs, `${thing}.key.pem`)] : [o.cert, o.certKey];
  if (certPath === undefined || keyPath === undefined) return undefined;
  if (ca === undefined) throw new Error("an mqtts:// broker needs the CA to trust: give --ca CA.pem (xs-ota cloud's tls/ca.pem)");
  const cert = readFileSync(certPath, "utf8");
  const key = readFileSync(keyPath, "utf8");
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(new X509Certificate(cert).subject)?.[1];
  if (cn !== thing) throw new Error(`${certPath} is thing ${cn ?? "(no CN)"}'s certificate, not ${thing}'s (the cloud lets a thing use its own topics only)`);
  return { ca, cert, key };
}

function describeEvent(e: DeviceEvent): string {
  switch (e.type) {
    case "boot":
      return `boot ${e.boots}: ${e.slot} runs ${e.version}${e.bootloader.length > 1 ? ` (bootloader: ${e.bootloader.slice(0, -1).join("; ")})` : ""}`;
    case "log":
      return `${e.level}: ${e.message}`;
    case "restart":
      return `restart: ${e.reason}`;
    case "halt":
      return `halted: ${e.reason}`;
  }
}

export function simCommand(args: string[], io: Io, hooks: SimCommandHooks = {}): Promise<number> {
  return withArgs(SIM, args, io, (a) => runSim(parse(a), io, hooks));
}

async function runSim(o: SimOptions, io: Io, hooks: SimCommandHooks): Promise<number> {
  const base = o.thing || (o.count > 1 ? "dev" : "dev-1");
  const things = o.count > 1 ? Array.from({ length: o.count }, (_, i) => `${base}-${i + 1}`) : [base];
  const caPath = o.ca;
  let ca: string | undefined;
  const tls = new Map<string, { ca: string; cert: string; key: string }>();
  try {
    o.keys = readKeys(o.keyFiles);
    ca = caPath === undefined ? undefined : readCaInput(caPath);
    for (const thing of things) {
      const pair = thingTls(o, thing, ca);
      if (pair !== undefined) tls.set(thing, pair);
    }
    if (o.firmware !== undefined) {
      const image = readInput(o.firmware, "the firmware");
      for (const thing of things) {
        try {
          flashDevice(join(o.dir, thing), image, { board: o.board });
        } catch (e) {
          throw new Error(`cannot flash ${o.firmware}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      io.out(`flashed ${o.firmware} into ${things.length === 1 ? things[0] : `${things.length} devices`} (${o.dir})`);
    }
  } catch (e) {
    io.err(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  const verbose = things.length === 1;
  const devices = things.map((thing) => {
    const enos = { fileBase: o.fileBase, fileService: o.fileService, deviceSecret: o.deviceSecret, productSecret: o.productSecret };
    const cloud: SimCloud = o.cloud === "enos" ? { kind: "enos", productKey: o.product, deviceKey: thing, ...definedOnly(enos) } : { kind: "aws" };
    const mqttTls = tls.get(thing);
    return new SimulatedDevice({ dir: join(o.dir, thing), thing, brokerUrl: o.broker, ...(mqttTls ? { mqttTls } : {}), keys: o.keys, cloud, config: { ...(ca ? { ca } : {}), allowUnsigned: o.allowUnsigned }, ...(o.flashTiming ? { flashTiming: o.flashTiming } : {}) });
  });
  const started = performance.now();
  const firstVersion = new Map<string, string>();
  let halted = 0;
  let check = () => {};
  let hinted = false;
  for (const d of devices) {
    d.on("event", (e) => {
      // The devices keep retrying on their own; the user needs to hear once what is missing.
      if (!hinted && e.type === "log" && e.message.startsWith("MQTT:") && /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|connect/i.test(e.message)) {
        hinted = true;
        io.err(`cannot reach the broker at ${o.broker}: start it with \`xs-ota cloud\` (or give --broker)`);
      }
      if (e.type === "boot" && !firstVersion.has(d.o.thing)) firstVersion.set(d.o.thing, e.version);
      if (e.type === "halt") halted++;
      if (verbose || e.type === "boot" || e.type === "halt" || (e.type === "log" && e.level === "error")) io.out(`${d.o.thing}  ${describeEvent(e)}`);
      check();
    });
  }
  const done = new Promise<number>((resolve) => {
    check = () => {
      if (halted > 0 && o.until !== undefined) return resolve(1);
      if (o.until === undefined) return;
      if (devices.every((d) => d.version === o.until && d.bootInfo()?.state === "valid" && !d.jobPending())) resolve(0);
    };
  });
  // A confirm is a flash write, not an event: look again now and then.
  const poll = setInterval(() => check(), 200);
  try {
    for (const d of devices) {
      try {
        await d.start();
      } catch (e) {
        io.err(`${d.o.thing}  error: ${e instanceof Error ? e.message : String(e)}`);
        halted++;
      }
    }
    io.out(`${devices.length === 1 ? devices[0]?.o.thing : `${devices.length} devices`} running; broker ${o.broker}${o.until ? `; until every device runs ${o.until}` : "; Ctrl-C stops"}`);
    const stop = hooks.stopped ?? waitForSignal();
    const code = await Promise.race([done, stop.then(() => 0)]);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const on = new Map<string, number>();
    for (const d of devices) on.set(d.version ?? "(none)", (on.get(d.version ?? "(none)") ?? 0) + 1);
    const updated = devices.filter((d) => d.version !== undefined && d.version !== firstVersion.get(d.o.thing)).length;
    io.out(`${[...on].map(([v, n]) => `${n} on ${v}`).join(", ")}; ${updated} updated, ${halted} halted, ${seconds} s`);
    return code;
  } finally {
    clearInterval(poll);
    for (const d of devices) await d.stop();
  }
}
