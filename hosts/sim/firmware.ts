/**
 * A simulator firmware image from an app's source: bundled for XS (minified), packed in the
 * board's image format (an ESP32 app image, modules/esp-idf/image.ts; a raw app for the
 * Nuvoton board, hosts/sim/raw-app.ts) and written to `out`. What `xs-ota bundle` plus
 * `xs-ota image pack` do, in one call, for the demo, the benches and the tests.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { packImage } from "../../modules/esp-idf/image.ts";
import { bundleFile, bundleForXs } from "./bundle.ts";
import { sha256 } from "./board.ts";
import { rawAppImage } from "./raw-app.ts";
import { nodeDigests } from "./node-digest.ts";
import { xzCompress } from "./xz.ts";
import { packW800Image } from "../../modules/w800/pack.ts";
import { w800Layout } from "../../modules/w800/header.ts";
import { loadTable, boardSpec } from "./board.ts";
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
  /** What the padding comment holds (repeated as needed; default "x"): real text makes a realistic image for patches. */
  padding?: string;
  /** The entry module's own text instead of `entry`'s file (imports absolute or xs-ota/...). */
  source?: string;
  /** The board whose image format to pack (default esp32). */
  board?: BoardName;
  /** W800: XZ-compress the image inside an outer header, as the SDK's OTA images are. */
  xz?: boolean;
}

/** Builds the image and returns its bytes (also written to `out`). */
export async function buildFirmware(o: FirmwareOptions): Promise<Uint8Array> {
  let script = o.source !== undefined ? await bundleForXs(o.source, { minify: true }) : await bundleFile(o.entry, { minify: true });
  if (o.padTo !== undefined) {
    const room = Math.max(0, o.padTo - script.length - 1200);
    const fill = (o.padding ?? "x").replaceAll("*/", "* /");
    script = `${script}\n/*${fill.repeat(Math.ceil(room / Math.max(1, fill.length))).slice(0, room)}*/`;
  }
  const board = o.board ?? "esp32";
  const payload = new TextEncoder().encode(script);
  let image: Uint8Array;
  if (board === "nuvoton") image = rawAppImage(o.version, script);
  else if (board === "w800") {
    const layout = w800Layout(loadTable(boardSpec("w800").defaultTable).partitions);
    const inner = packW800Image({ version: o.version, body: payload, layout, digests: nodeDigests });
    image = o.xz ? packW800Image({ version: o.version, body: xzCompress(inner), compressType: 1, layout, digests: nodeDigests }) : inner;
  } else image = packImage({ version: o.version, projectName: o.projectName, payload, sha256 });
  writeFileSync(o.out, image);
  return image;
}
