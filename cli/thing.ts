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
import { issueThingCertificate, makeLocalCa, thingNameProblem } from "../cloud/tls.ts";

const USAGE = "usage: xs-ota thing create NAME [--data DIR] [--out DIR] [--key-type ec|rsa]";

export async function thingCommand(args: string[], io: Io): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== "create") {
    io.err(verb === undefined ? USAGE : `xs-ota thing: unknown subcommand '${verb}'`);
    if (verb !== undefined) io.err(USAGE);
    return 2;
  }
  let name: string | undefined;
  let dataDir = ".xs-ota-cloud";
  let outDir: string | undefined;
  let keyType: "ec" | "rsa" = "ec";
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] ?? "";
    const v = rest[i + 1];
    if ((a === "--data" || a === "--out" || a === "--key-type") && v !== undefined) {
      if (a === "--data") dataDir = v;
      else if (a === "--out") outDir = v;
      else if (v === "ec" || v === "rsa") keyType = v;
      else {
        io.err(`xs-ota thing: --key-type takes ec or rsa, got ${v}`);
        return 2;
      }
      i++;
    } else if (!a.startsWith("--") && name === undefined) name = a;
    else {
      io.err(`xs-ota thing: ${a === "--data" || a === "--out" || a === "--key-type" ? `${a} needs a value` : `unexpected argument '${a}'`}`);
      io.err(USAGE);
      return 2;
    }
  }
  if (name === undefined) {
    io.err("xs-ota thing: give the thing's name");
    io.err(USAGE);
    return 2;
  }
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
