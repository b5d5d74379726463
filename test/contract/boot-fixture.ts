/** A small simulated ESP32 for boot-control suites: otadata and two 64 KB slots. Portable. */
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { SimPartitions, type PartitionExtent } from "../../hosts/sim/partitions.ts";
import { espImageCheck, runBootloader, type ImageCheck } from "../../hosts/sim/bootloader.ts";
import { OtadataBootControl, type WriteOrder } from "../../modules/esp-idf/boot-control.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { packImage } from "../../modules/esp-idf/image.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";

export const sha256 = () => nobleDigests.create("sha256");

export const MINI_TABLE: PartitionExtent[] = [
  { name: "nvs", type: 1, subtype: 2, offset: 0x9000, size: 0x4000 },
  { name: "otadata", type: 1, subtype: 0, offset: 0xd000, size: 0x2000 },
  { name: "ota_0", type: 0, subtype: 0x10, offset: 0x10000, size: 0x10000 },
  { name: "ota_1", type: 0, subtype: 0x11, offset: 0x20000, size: 0x10000 },
];
export const MINI_FLASH = 0x30000;

export function appImage(version: string, payloadBytes = 600): Uint8Array {
  const payload = new Uint8Array(payloadBytes);
  for (let i = 0; i < payload.length; i++) payload[i] = 0x41 + ((i * 7 + version.length) % 26);
  return packImage({ version, payload, sha256 });
}

export const checkImage: ImageCheck = espImageCheck(sha256);

export class MiniDevice {
  readonly flash: NorFlash;
  readonly partitions: SimPartitions;
  readonly boot: OtadataBootControl;
  lastLog: string[] = [];

  constructor(options: { strict?: boolean; order?: WriteOrder; table?: PartitionExtent[] } = {}) {
    this.flash = new NorFlash({ size: MINI_FLASH, strict: options.strict });
    this.partitions = new SimPartitions(this.flash, (options.table ?? MINI_TABLE).map((p) => ({ ...p })));
    this.boot = new OtadataBootControl(this.partitions, { order: options.order });
  }

  install(slot: string, image: Uint8Array): void {
    new ImageWriter(this.partitions.open(slot), image.length).write(image);
  }

  restart(): string | undefined {
    const outcome = runBootloader(this.partitions, checkImage);
    this.lastLog = outcome.log;
    return outcome.slot;
  }

  otadata(): Uint8Array {
    const f = this.partitions.open("otadata");
    return new Uint8Array(f.read(0x2000, 0));
  }

  /** Writes raw bytes into otadata sector `sector` (erasing it first). */
  putEntry(sector: 0 | 1, bytes: Uint8Array): void {
    const f = this.partitions.open("otadata");
    f.eraseBlock(sector);
    f.write(bytes, sector * 0x1000);
  }

  /** A factory-fresh device on `version` in ota_0, booted once. */
  static fresh(options: { strict?: boolean; order?: WriteOrder } = {}, version = "1.0.0"): MiniDevice {
    const d = new MiniDevice(options);
    d.install("ota_0", appImage(version));
    if (d.restart() !== "ota_0") throw new Error("fresh device did not boot ota_0");
    return d;
  }
}
