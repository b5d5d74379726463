/**
 * A simulator firmware image from an app's source: bundled for XS (minified), packed in the
 * board's image format (an ESP32 app image, modules/esp-idf/image.ts; a raw app for the
 * Nuvoton board, hosts/sim/raw-app.ts) and written to `out`. What `xs-ota bundle` plus
 * `xs-ota image pack` do, in one call, for the demo, the benches and the tests.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { packImage } from "../../modules/esp-idf/image.ts";
import { bundleFile } from "./bundle.ts";
import { sha256 } from "./board.ts";
import { rawAppImage } from "./raw-app.ts";
import type { BoardName } from "./layouts.ts";

/** The demo app's entries (hosts/sim/apps). */
export const DEMO_APP = {
  passes: fileURLToPath(new URL("./apps/self-test-passes.ts", import.meta.url)),
  fails: fileURLToPath(new URL("./apps/self-test-fails.ts", import.meta.url)),
};

export interface FirmwareOptions {
  /** The app's entry module (.ts or .js). */
  entry: string;
  version: string;
  /** Where the image goes. */
  out: string;
  projectName?: string;
  /** Pads the program with a trailing comment so the image is about this many bytes. */
  padTo?: number;
  /** The board whose image format to pack (default esp32). */
  board?: BoardName;
}

/** Builds the image and returns its bytes (also written to `out`). */
export async function buildFirmware(o: FirmwareOptions): Promise<Uint8Array> {
  let script = await bundleFile(o.entry, { minify: true });
  if (o.padTo !== undefined) script = `${script}\n/*${"x".repeat(Math.max(0, o.padTo - script.length - 1200))}*/`;
  const board = o.board ?? "esp32";
  const image = board === "nuvoton" ? rawAppImage(o.version, script) : packImage({ version: o.version, projectName: o.projectName, payload: new TextEncoder().encode(script), sha256 });
  writeFileSync(o.out, image);
  return image;
}
