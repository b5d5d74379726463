/**
 * The W800 staging layout for the power-cut proof (hosts/sim/power-cut.ts): the factory image in
 * app, the install record in ota_state, secboot (hosts/sim/w800-secboot.ts) at every boot, and
 * which image runs told by the installed body's bytes. Node only (secboot decompresses XZ).
 */
import type { SweepBoard } from "./power-cut.ts";
import { W800BootControl, RUN_SLOT } from "../../modules/w800/boot-control.ts";
import { w800Format, isCompressed } from "../../modules/w800/format.ts";
import { W800_HEADER_SIZE, decodeHeader, type W800Layout } from "../../modules/w800/header.ts";
import { isOtaError } from "../../modules/errors.ts";
import { runW800Secboot, w800Program, writeW800Factory } from "./w800-secboot.ts";
import { xzDecompress } from "./xz.ts";

/** The body an image runs once installed (an XZ image's inner body). */
function runBody(image: Uint8Array): Uint8Array {
  const header = decodeHeader(image.subarray(0, W800_HEADER_SIZE));
  const inner = isCompressed(header) ? xzDecompress(image.subarray(W800_HEADER_SIZE, W800_HEADER_SIZE + header.imgLen)) : image;
  const run = decodeHeader(inner.subarray(0, W800_HEADER_SIZE));
  return inner.subarray(W800_HEADER_SIZE, W800_HEADER_SIZE + run.imgLen);
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

export function w800SweepBoard(oldImage: Uint8Array, newImage: Uint8Array, layout: W800Layout): SweepBoard {
  const oldBody = runBody(oldImage);
  const newBody = runBody(newImage);
  return {
    firstSlot: RUN_SLOT,
    format: w800Format(layout),
    boot: (partitions) => new W800BootControl(partitions, layout),
    start: (partitions) => runW800Secboot(partitions, { layout }).slot,
    identify: (partitions) => {
      try {
        const { body } = w800Program(partitions, layout);
        return same(body, newBody) ? "new" : same(body, oldBody) ? "old" : "unbootable";
      } catch (e) {
        if (isOtaError(e, "image-invalid")) return "unbootable";
        throw e;
      }
    },
    factory: (partitions, image) => writeW800Factory(partitions, image),
  };
}
