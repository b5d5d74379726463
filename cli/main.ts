/**
 * xs-ota command dispatcher. Each command lives in its own file and exports a function that
 * takes the arguments after its name, writes to the given streams, and returns the exit code.
 */
import { partitionsCommand } from "./partitions.ts";
import { otadataCommand } from "./otadata.ts";
import { keygenCommand, signCommand, verifyCommand } from "./signing.ts";
import { fetchCommand } from "./fetch.ts";
import { jobCommand } from "./job.ts";
import { imageCommand } from "./image.ts";
import { cloudCommand } from "./cloud.ts";
import { thingCommand } from "./thing.ts";
import { simCommand } from "./sim.ts";
import { bundleCommand } from "./bundle.ts";
import { demoCommand } from "./demo.ts";
import { describeFailure } from "./files.ts";
import { enosCommand } from "./enos.ts";
import { deltaCommand } from "./delta.ts";
import { readFileSync } from "node:fs";

export interface Io {
  out(line: string): void;
  err(line: string): void;
}

export type Command = (args: string[], io: Io) => Promise<number> | number;

const commands: Record<string, { run: Command; usage: string }> = {
  partitions: { run: partitionsCommand, usage: "partitions check FILE [--flash-size SIZE]" },
  otadata: {
    run: otadataCommand,
    usage: "otadata decode FILE | otadata encode --seq N --state NAME [--seq N --state NAME] -o FILE",
  },
  keygen: { run: keygenCommand, usage: "keygen --out DIR" },
  sign: { run: signCommand, usage: "sign --key KEY.pem FILE" },
  verify: { run: verifyCommand, usage: "verify --key PUB_OR_CERT.pem --sig BASE64 FILE" },
  job: {
    run: jobCommand,
    usage: [
      "job parse [--format aws|enos] [FILE|-]",
      "job document --file FW.bin (--s3-url URL | --url URL | --stream ID) [--key KEY.pem] [--format aws|nrf|zerynth] [-o job.json]",
      "job create --thing T [--thing T2] --file FW.bin [--key KEY.pem] [--protocol http|mqtt] [--format aws|nrf|zerynth|enos] [--control URL]",
      "job list [--control URL] | job describe ID [--control URL]",
    ].join("\n"),
  },
  cloud: { run: (args, io) => cloudCommand(args, io), usage: "cloud [--data DIR] [--mqtt-port N | --broker URL] [--mqtts-port N] [--control-port N] [--https-port N]" },
  thing: { run: thingCommand, usage: "thing create NAME [--data DIR] [--out DIR] [--key-type ec|rsa]" },
  sim: {
    run: (args, io) => simCommand(args, io),
    usage: "sim [--thing T] [--count N] [--firmware FW.bin] [--key [LABEL=]PUB.pem] [--broker URL] [--ca CA.pem] [--cert CERT.pem --cert-key KEY.pem | --certs DIR] [--dir DIR] [--until VERSION]",
  },
  enos: { run: enosCommand, usage: "enos register --device DK [--product PK] [--secret S] [--product-secret S] [--control URL]" },
  demo: { run: (args, io) => demoCommand(args, io), usage: "demo [--dir DIR] [--broker URL]" },
  bundle: { run: bundleCommand, usage: "bundle APP.ts -o APP.js [--no-minify]" },
  image: { run: imageCommand, usage: "image pack --version V [--secure-version N] -o OUT BUNDLE.js | image info FILE" },
  delta: { run: deltaCommand, usage: "delta make --from OLD.bin --to NEW.bin -o PATCH [--window BYTES] | delta apply --from OLD.bin PATCH -o NEW.bin" },
  fetch: { run: fetchCommand, usage: "fetch URL --out FILE [--size N] [--sha256 HEX] [--window BYTES] [--ca PEM] [--timeout MS] [--min-rate BYTES_PER_S] [--rate-window MS]" },
};

const consoleIo: Io = {
  out: (line) => process.stdout.write(line + "\n"),
  err: (line) => process.stderr.write(line + "\n"),
};

/**
 * `xs-ota job list | head -1`: when the reader goes away, writing raises EPIPE on the stream,
 * which unhandled kills the process with a stack trace. The output is no longer wanted, so the
 * command ends quietly, as Unix tools do. Installed once, by bin/xs-ota.js's call of main().
 */
let epipeHandled = false;
function quietOnEpipe(): void {
  // Not skipped when the stream has listeners already: tsx adds one that does not end the process.
  if (epipeHandled) return;
  epipeHandled = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(0);
      throw e;
    });
  }
}

/** package.json's version, found next to this file so it works from any working directory. */
export function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  const version = typeof pkg === "object" && pkg !== null ? (pkg as Record<string, unknown>)["version"] : undefined;
  return typeof version === "string" ? version : "unknown";
}

function commandList(write: (line: string) => void): void {
  write("usage: xs-ota <command> [options]   (xs-ota <command> --help for its options)");
  for (const c of Object.values(commands)) for (const line of c.usage.split("\n")) write(`  xs-ota ${line}`);
  write("  xs-ota --version");
}

export async function main(argv: string[], io: Io = consoleIo): Promise<number> {
  if (io === consoleIo) quietOnEpipe();
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-V") {
    io.out(packageVersion());
    return 0;
  }
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    commandList(io.out);
    return 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    io.err(`xs-ota: unknown command '${name}'`);
    commandList(io.err);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    // The last line of defence: a user sees one line, never a stack trace.
    const known = describeFailure(e);
    io.err(`error: ${known ?? (e instanceof Error ? e.message : String(e))}`);
    return 1;
  }
}
