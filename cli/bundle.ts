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
import { bundleFile } from "../hosts/sim/bundle.ts";
import { checkInput } from "./files.ts";

const USAGE = "usage: xs-ota bundle APP.ts -o APP.js [--no-minify]";

export async function bundleCommand(args: string[], io: Io): Promise<number> {
  let out: string | undefined;
  let minify = true;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    if ((a === "-o" || a === "--out") && args[i + 1] !== undefined) out = args[++i];
    else if (a === "--no-minify") minify = false;
    else if (a.startsWith("-")) return usage(io, `unknown option ${a}`);
    else rest.push(a);
  }
  if (rest.length !== 1) return usage(io, rest.length ? "one entry file, please" : "the app's entry file is missing");
  if (out === undefined) return usage(io, "-o OUT.js is required");
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

function usage(io: Io, message: string): number {
  io.err(`xs-ota bundle: ${message}`);
  io.err(USAGE);
  return 2;
}
