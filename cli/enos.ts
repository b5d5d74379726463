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
import { runGroup, withArgs, type Args, type CommandSpec, type Group } from "./args.ts";
import { findControl } from "./endpoint.ts";

export const ENOS_REGISTER: CommandSpec = {
  name: "enos register",
  usage: ["enos register --device DK [--product PK] [--secret S] [--product-secret S] [--control URL] [--data DIR]"],
  about: ["Registers an EnOS device with a running `xs-ota cloud` and prints its triple and product secret."],
  options: {
    device: { type: "string", value: "DK", required: true, description: "the device key" },
    product: { type: "string", value: "PK", description: "the product key" },
    secret: { type: "string", value: "S", description: "the device secret (default: kept or made up)" },
    "product-secret": { type: "string", value: "S", description: "the product secret (default: kept or made up)" },
    control: { type: "string", value: "URL", description: "the cloud's control API (default: from DIR/cloud.json, else http://127.0.0.1:8180)" },
    data: { type: "string", value: "DIR", description: "the cloud's data folder (default .xs-ota-cloud)" },
  },
};

const GROUP: Group = { name: "enos", subcommands: { register: { spec: ENOS_REGISTER, run: (args, io) => withArgs(ENOS_REGISTER, args, io, (a) => register(a, io)) } } };

export function enosCommand(args: string[], io: Io): Promise<number> | number {
  return runGroup(GROUP, args, io);
}

async function register(a: Args, io: Io): Promise<number> {
  const body = a.fields({ device: "deviceKey", product: "productKey", secret: "deviceSecret", "product-secret": "productSecret" });
  const base = await findControl(io, { control: a.string("control"), data: a.string("data") });
  if (base === undefined) return 1;
  const answer = await control(io, base, "POST", "/enos/devices", body);
  if (!answer) return 1;
  io.out(`productKey     ${String(answer["productKey"])}`);
  io.out(`deviceKey      ${String(answer["deviceKey"])}`);
  io.out(`deviceSecret   ${String(answer["deviceSecret"])}`);
  io.out(`productSecret  ${String(answer["productSecret"])}`);
  return 0;
}
