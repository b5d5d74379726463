/**
 * xs-ota enos register --device DK [--product PK] [--secret S] [--product-secret S] [--control URL]
 *
 * Registers an EnOS device with a running `xs-ota cloud` (POST /enos/devices) and prints its
 * triple and product secret. From then on the cloud's broker holds the device to EnOS's login
 * (securemode 2 with the device secret, 3 with the product secret) and its topics to that login,
 * and its offers name the file as enos-connect://, fetched through the HTTP broker's download
 * after a login. Secrets not given are kept from an earlier registration or made up.
 */
import type { Io } from "./main.ts";
import { control } from "./job.ts";
import { DEFAULT_CONTROL_PORT } from "../cloud/server.ts";

const USAGE = "usage: xs-ota enos register --device DK [--product PK] [--secret S] [--product-secret S] [--control URL]";

export async function enosCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "register") {
    io.err(sub === undefined ? USAGE : `xs-ota enos: unknown subcommand '${sub}'`);
    if (sub !== undefined) io.err(USAGE);
    return 2;
  }
  let base = `http://127.0.0.1:${DEFAULT_CONTROL_PORT}`;
  const body: Record<string, string> = {};
  const names: Record<string, string> = { "--device": "deviceKey", "--product": "productKey", "--secret": "deviceSecret", "--product-secret": "productSecret" };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] ?? "";
    const v = rest[i + 1];
    if (a !== "--control" && !(a in names)) {
      io.err(`xs-ota enos register: unexpected argument '${a}'`);
      io.err(USAGE);
      return 2;
    }
    if (v === undefined) {
      io.err(`xs-ota enos register: ${a} needs a value`);
      return 2;
    }
    i++;
    if (a === "--control") base = v;
    else body[names[a] ?? a] = v;
  }
  if (body["deviceKey"] === undefined) {
    io.err("xs-ota enos register: --device is required");
    io.err(USAGE);
    return 2;
  }
  const answer = await control(io, base, "POST", "/enos/devices", body);
  if (!answer) return 1;
  io.out(`productKey     ${String(answer["productKey"])}`);
  io.out(`deviceKey      ${String(answer["deviceKey"])}`);
  io.out(`deviceSecret   ${String(answer["deviceSecret"])}`);
  io.out(`productSecret  ${String(answer["productSecret"])}`);
  return 0;
}
