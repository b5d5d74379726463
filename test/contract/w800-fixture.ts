/** A simulated W800 with the shipped 2 MB layout, for the W800 suites. Portable. */
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { SimPartitions, type PartitionExtent } from "../../hosts/sim/partitions.ts";
import { W800BootControl } from "../../modules/w800/boot-control.ts";
import { W800_2MB_LAYOUT, W800_RUN_OFFSET } from "../../modules/w800/header.ts";
import { packW800Image } from "../../modules/w800/pack.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";

/** partitions/w800-2mb.csv (test/w800.test.ts checks they agree). */
export const W800_TABLE: PartitionExtent[] = [
  { name: "ft", type: 1, subtype: 0x41, offset: 0x0, size: 0x2000 },
  { name: "bootloader", type: 1, subtype: 0x42, offset: 0x2000, size: 0xc000 },
  { name: "partition_table", type: 1, subtype: 0x43, offset: 0xe000, size: 0x1000 },
  { name: "app", type: 0, subtype: 0, offset: 0xf000, size: 0x122000 },
  { name: "app_ota", type: 1, subtype: 0x40, offset: 0x131000, size: 0xae000 },
  { name: "ota_state", type: 1, subtype: 0x44, offset: 0x1df000, size: 0x1000 },
  { name: "user", type: 1, subtype: 0x45, offset: 0x1e0000, size: 0x2000 },
  { name: "nvs", type: 1, subtype: 0x46, offset: 0x1f0000, size: 0x8000 },
];
export const W800_FLASH = 0x200000;
export const layout = W800_2MB_LAYOUT;
export const digests = nobleDigests;

export function body(version: string, length = 3000): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + version.charCodeAt(version.length - 1)) & 0xff;
  return b;
}

export function w800Image(version: string, length = 3000): Uint8Array {
  return packW800Image({ version, body: body(version, length), layout, digests });
}

export class W800Device {
  readonly flash: NorFlash;
  readonly partitions: SimPartitions;
  readonly boot: W800BootControl;

  constructor(data?: Uint8Array) {
    this.flash = new NorFlash({ size: W800_FLASH, strict: true, data });
    this.partitions = new SimPartitions(this.flash, W800_TABLE, "app");
    this.boot = new W800BootControl(this.partitions, layout);
  }

  stage(image: Uint8Array): void {
    const w = new ImageWriter(this.partitions.open("app_ota"), image.length);
    w.write(image);
    w.finish();
  }

  /** Puts an uncompressed image straight into app, as a factory programmer would. */
  program(image: Uint8Array): void {
    const app = this.partitions.open("app");
    app.eraseBlock(0, Math.ceil((W800_RUN_OFFSET + image.length) / 4096));
    app.write(image.subarray(64), W800_RUN_OFFSET);
    app.write(image.subarray(0, 64), 0);
  }

  static fresh(version = "1.0.0"): W800Device {
    const d = new W800Device();
    d.program(w800Image(version));
    return d;
  }
}
