/**
 * The @AFRTOS staging layout (Nuvoton M487 with the Cloner) for the power-cut proof
 * (hosts/sim/power-cut.ts): its factory state, its bootloader, and how to tell which image APROM
 * holds. A raw binary carries no check of its own, so APROM is judged by its bytes: the old image
 * or the new one, each followed by erased flash; anything else counts as unbootable. Portable.
 */
import type { DigestFactory } from "../../modules/ports/digest.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { AfrStagingBootControl, DESCRIPTOR_PARTITION, RUN_SLOT, writeDescriptor } from "../../modules/afr-staging/boot-control.ts";
import { FLAGS, encodeDescriptor, makeDescriptor } from "../../modules/afr-staging/descriptor.ts";
import { afrStagingFormat } from "../../modules/afr-staging/format.ts";
import { NorFlash } from "./nor-flash.ts";
import type { SweepBoard } from "./power-cut.ts";
import { SimPartitions, type PartitionExtent } from "./partitions.ts";
import { runCloner } from "./cloner.ts";

export interface AfrDevice {
  flash: NorFlash;
  partitions: SimPartitions;
  boot: AfrStagingBootControl;
}

/** A device whose APROM holds `image` under a VALID descriptor, as one earlier update leaves it. */
export function factoryDevice(o: { table: PartitionExtent[]; flashSize: number; image: Uint8Array }): AfrDevice {
  const flash = new NorFlash({ size: o.flashSize });
  const partitions = new SimPartitions(flash, o.table, RUN_SLOT);
  new ImageWriter(partitions.open(RUN_SLOT), o.image.length).write(o.image);
  writeDescriptor(partitions.open(DESCRIPTOR_PARTITION), encodeDescriptor(makeDescriptor(FLAGS.VALID, 1, o.image.length, 0)));
  return { flash, partitions, boot: new AfrStagingBootControl(partitions) };
}

/** Which image APROM holds: its bytes, then erased flash up to the longer image's last block. */
export function apromHolds(partitions: SimPartitions, oldImage: Uint8Array, newImage: Uint8Array): "old" | "new" | "neither" {
  const aprom = partitions.open(RUN_SLOT);
  const bl = aprom.status().blockLength;
  const span = Math.min(aprom.status().size, Math.ceil(Math.max(oldImage.length, newImage.length) / bl) * bl);
  const bytes = new Uint8Array(aprom.read(span, 0));
  if (matches(bytes, newImage)) return "new";
  if (matches(bytes, oldImage)) return "old";
  return "neither";
}

function matches(bytes: Uint8Array, image: Uint8Array): boolean {
  for (let i = 0; i < image.length; i++) if (bytes[i] !== image[i]) return false;
  for (let i = image.length; i < bytes.length; i++) if (bytes[i] !== 0xff) return false;
  return true;
}


/** The layout for powerCutSweep: the factory image under a VALID descriptor, the Cloner at every boot. */
export function afrSweepBoard(oldImage: Uint8Array, newImage: Uint8Array, digests: DigestFactory): SweepBoard {
  return {
    firstSlot: RUN_SLOT,
    format: afrStagingFormat,
    boot: (partitions) => new AfrStagingBootControl(partitions),
    start: (partitions) => runCloner(partitions, digests).slot,
    identify: (partitions) => {
      const held = apromHolds(partitions, oldImage, newImage);
      return held === "neither" ? "unbootable" : held;
    },
    factory: (partitions, image) => {
      new ImageWriter(partitions.open(RUN_SLOT), image.length).write(image);
      writeDescriptor(partitions.open(DESCRIPTOR_PARTITION), encodeDescriptor(makeDescriptor(FLAGS.VALID, 1, image.length, 0)));
    },
  };
}
