/**
 * The simulated boards' boot layouts, as the firmware sees them: for each board, its image
 * format and its boot control over the board's partitions. Portable (no platform imports): the
 * firmware's host (hosts/sim/xs/host.ts) builds its ports from here on XS, and the Node side
 * (hosts/sim/board.ts, the power-cut proof) uses the same objects.
 *
 * Adding a board: its format and boot control come from its folder under modules/ (one per
 * image format); it gets an entry here, a partition table under partitions/, and a bootloader
 * entry in hosts/sim/board.ts.
 */
import type { BootControl } from "../../modules/ports/boot-control.ts";
import type { ImageFormat } from "../../modules/ports/image-format.ts";
import { OtaError } from "../../modules/errors.ts";
import { OtadataBootControl } from "../../modules/esp-idf/boot-control.ts";
import { espIdfFormat } from "../../modules/esp-idf/format.ts";
import { AfrStagingBootControl } from "../../modules/afr-staging/boot-control.ts";
import { afrStagingFormat } from "../../modules/afr-staging/format.ts";
import { W800BootControl } from "../../modules/w800/boot-control.ts";
import { w800Format } from "../../modules/w800/format.ts";
import { w800Layout } from "../../modules/w800/header.ts";
import type { PartitionExtent, SimPartitions } from "./partitions.ts";

export type BoardName = "esp32" | "w800" | "nuvoton";

export const BOARD_NAMES: readonly BoardName[] = Object.freeze(["esp32", "w800", "nuvoton"]);

export interface Layout {
  /** The image format the board's bootloader reads. */
  format(table: readonly PartitionExtent[]): ImageFormat;
  boot(partitions: SimPartitions): BootControl;
  /** The slot the bootloader starts on a factory-fresh device. */
  firstSlot: string;
}

const LAYOUTS: Record<BoardName, Layout> = {
  esp32: { format: () => espIdfFormat, boot: (p) => new OtadataBootControl(p), firstSlot: "ota_0" },
  w800: { format: (table) => w800Format(w800Layout(table)), boot: (p) => new W800BootControl(p, w800Layout(p.table)), firstSlot: "app" },
  nuvoton: { format: () => afrStagingFormat, boot: (p) => new AfrStagingBootControl(p), firstSlot: "aprom" },
};

export function isBoardName(name: string): name is BoardName {
  return (BOARD_NAMES as readonly string[]).includes(name);
}

export function layoutOf(board: string): Layout {
  if (!isBoardName(board)) throw new OtaError("bad-argument", `unknown board '${board}' (one of ${BOARD_NAMES.join(", ")})`);
  return LAYOUTS[board];
}
