/**
 * xs-ota bundle APP.ts -o APP.js [--no-minify]
 *
 * Bundles an app for the simulator's XS engine (hosts/sim/bundle.ts): one script, `xs-ota/...`
 * imports resolved as manifest.json resolves them on a device, `xs-ota/sim/host` to the
 * simulator's board. `xs-ota image pack` then wraps the script in a firmware image.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Io } from "./main.ts";
import { withArgs, type Args, type CommandSpec } from "./args.ts";
import { bundleFile } from "../hosts/sim/bundle.ts";
import { checkInput } from "./files.ts";

export const BUNDLE: CommandSpec = {
  name: "bundle",
  usage: ["bundle APP.ts -o APP.js [--no-minify]"],
  about: ["Bundles an app for the simulator's XS engine into one script; `xs-ota image pack` then makes it firmware."],
  options: {
    out: { type: "string", short: "o", value: "APP.js", description: "the bundle to write" },
    "no-minify": { type: "boolean", description: "keep the script readable" },
  },
  positionals: { min: 1, max: 1, name: "the app's entry file (APP.ts)" },
};

export function bundleCommand(args: string[], io: Io): Promise<number> {
  return withArgs(BUNDLE, args, io, (a) => bundle(a, io));
}

async function bundle(a: Args, io: Io): Promise<number> {
  const out = a.string("out");
  const minify = !a.flag("no-minify");
  const rest = a.positionals;
  if (out === undefined) a.fail("-o OUT.js is required");
  checkInput(rest[0] ?? "", "the app's entry file");
  let script: string;
  try {
    script = await bundleFile(resolve(rest[0] ?? ""), { minify });
  } catch (e) {
    io.err(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  try {
    writeFileSync(out, script);
  } catch (e) {
    io.err(`error: ${(e as Error).message}`);
    return 1;
  }
  io.out(`bundle: ${out} (${script.length} bytes)`);
  return 0;
}
