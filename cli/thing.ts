/**
 * xs-ota thing create NAME [--data DIR] [--out DIR] [--key-type ec|rsa]
 *
 * A device identity for the local cloud's MQTT over mutual TLS (cloud/server.ts, `urls.mqtts`):
 * a client certificate for thing NAME (CN = NAME, ECDSA P-256, one year) issued by the cloud's CA
 * in DIR/tls (DIR as `xs-ota cloud --data`, default .xs-ota-cloud; made there if the cloud never
 * ran), written as NAME.cert.pem and NAME.key.pem (mode 0600) into --out (default DIR/things).
 * A running cloud with the same DIR takes the certificate at once: it trusts that CA. Existing
 * files are never overwritten (exit 1); a name outside AWS IoT's rule, [a-zA-Z0-9:_-]{1,128}, is
 * refused (exit 2). `--key-type rsa` makes an RSA 2048 device key instead of ECDSA P-256: Moddable's
 * TLS (the esp32 host) can sign its side of the handshake with an RSA key only.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Io } from "./main.ts";
import { runGroup, withArgs, type Args, type CommandSpec, type Group } from "./args.ts";
import { issueThingCertificate, makeLocalCa, thingNameProblem } from "../cloud/tls.ts";

export const THING_CREATE: CommandSpec = {
  name: "thing create",
  usage: ["thing create NAME [--data DIR] [--out DIR] [--key-type ec|rsa]"],
  about: ["Makes a client certificate and key for thing NAME, issued by the local cloud's CA (MQTT over mutual TLS)."],
  options: {
    data: { type: "string", value: "DIR", description: "the cloud's data folder, whose tls/ holds the CA (default .xs-ota-cloud)" },
    out: { type: "string", value: "DIR", description: "where NAME.cert.pem and NAME.key.pem go (default DIR/things)" },
    "key-type": { type: "string", value: "ec|rsa", choices: ["ec", "rsa"], description: "the device key: ECDSA P-256 (default) or RSA 2048" },
  },
  positionals: { min: 1, max: 1, name: "the thing's name" },
};

const GROUP: Group = { name: "thing", subcommands: { create: { spec: THING_CREATE, run: (args, io) => withArgs(THING_CREATE, args, io, (a) => create(a, io)) } } };

export function thingCommand(args: string[], io: Io): Promise<number> | number {
  return runGroup(GROUP, args, io);
}

async function create(a: Args, io: Io): Promise<number> {
  const name = a.positionals[0] ?? "";
  const dataDir = a.string("data") ?? ".xs-ota-cloud";
  const outDir = a.string("out");
  const keyType = a.string("key-type") === "rsa" ? "rsa" : "ec";
  const problem = thingNameProblem(name);
  if (problem !== undefined) {
    io.err(`xs-ota thing: ${problem}`);
    return 2;
  }
  const out = outDir ?? join(dataDir, "things");
  const certPath = join(out, `${name}.cert.pem`);
  const keyPath = join(out, `${name}.key.pem`);
  const existing = [certPath, keyPath].filter((p) => existsSync(p));
  if (existing.length > 0) {
    io.err(`error: ${existing.join(" and ")} already exist${existing.length === 1 ? "s" : ""}; remove it or choose another --out`);
    return 1;
  }
  try {
    const ca = await makeLocalCa(join(dataDir, "tls"));
    const issued = await issueThingCertificate(ca, name, { keyType });
    mkdirSync(out, { recursive: true });
    // "wx": if another run wrote them meanwhile, fail rather than replace its key.
    writeFileSync(keyPath, issued.key, { mode: 0o600, flag: "wx" });
    writeFileSync(certPath, issued.cert, { mode: 0o644, flag: "wx" });
  } catch (e) {
    io.err(`error: cannot create thing ${name}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  io.out(`certificate  ${certPath}`);
  io.out(`key          ${keyPath}`);
  io.out(`CA           ${join(dataDir, "tls", "ca.pem")}`);
  return 0;
}
