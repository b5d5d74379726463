/**
 * The simulated W800 second-stage boot: xs-ota's model of secboot, which is closed source.
 *
 * The model: when the install record (modules/w800/record.ts) requests an install and app_ota
 * holds that image, checked as wm_ota_ops checks it (header, org_checksum over the body), the
 * boot installs it into app. A compressed image (compress_type 1) carries an XZ stream whose
 * content is the inner, uncompressed image: its own 64-byte header (compress_type 0, img_len
 * and org_checksum of the body, the same ver) and the body. The inner header goes to app + 0 and
 * the body to app + 0x400 (img_addr - img_header_addr); an uncompressed staged image is installed
 * the same way. Then the record is marked installed, and app runs if its image checks out.
 *
 * Power: nothing is written to app_ota or ota_state until the installed image has been checked,
 * so a cut anywhere in the install leaves the request and the staged image as they were, and the
 * next boot installs again. The body is written before the header for the same reason: an
 * interrupted install never leaves a header that vouches for a half-written body.
 *
 * Synchronous, like hosts/sim/bootloader.ts (XZ through hosts/sim/xz.ts). Node only.
 */
import type { Flash } from "../../modules/ports/flash.ts";
import { OtaError, isOtaError } from "../../modules/errors.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { W800_2MB_LAYOUT, W800_HEADER_SIZE, W800_RUN_OFFSET, checkHeader, decodeHeader, sdkCrcOfDigest, type W800Layout } from "../../modules/w800/header.ts";
import { checkW800Image, isCompressed } from "../../modules/w800/format.ts";
import { markInstalled, readInstallRecord } from "../../modules/w800/record.ts";
import { RECORD_PARTITION, RUN_SLOT, STAGING_SLOT, sameImage, stagedId } from "../../modules/w800/boot-control.ts";
import { nodeDigests } from "./node-digest.ts";
import type { BootOutcome } from "./bootloader.ts";
import type { SimPartitions } from "./partitions.ts";
import { xzDecompress } from "./xz.ts";

export interface W800SecbootOptions {
  layout?: W800Layout;
}

const SECTOR = 0x1000;
const BLOCK = 0x10000;
const WRITE = 0x1000;

export function runW800Secboot(partitions: SimPartitions, options: W800SecbootOptions = {}): BootOutcome {
  const layout = options.layout ?? W800_2MB_LAYOUT;
  const log: string[] = [];
  const recordFlash = partitions.open(RECORD_PARTITION);
  const record = readInstallRecord(recordFlash);
  if (record?.state === "requested") {
    const why = install(partitions, layout, log, record);
    if (why === undefined) {
      markInstalled(recordFlash);
      log.push("install record: installed, on trial");
    } else log.push(`no install: ${why}`);
  }
  const why = imageProblem(() => checkW800Image(partitions.open(RUN_SLOT), layout, "installed", nodeDigests));
  if (why !== undefined) {
    log.push(`${RUN_SLOT} is not bootable: ${why}`);
    return { slot: undefined, log };
  }
  log.push(`boot ${RUN_SLOT}`);
  partitions.setRunning(RUN_SLOT);
  return { slot: RUN_SLOT, log };
}

/** Installs the requested image into app; returns why not, or undefined once it is in and checked. */
function install(partitions: SimPartitions, layout: W800Layout, log: string[], record: { hdChecksum: number; length: number }): string | undefined {
  const staging = partitions.open(STAGING_SLOT);
  const id = stagedId(staging, layout);
  if (!id || !sameImage(id, record)) return `${STAGING_SLOT} does not hold the image the record requests`;
  const checked = attempt(() => checkW800Image(staging, layout, "staged", nodeDigests));
  if ("why" in checked) return checked.why;
  const outer = checked.value;
  let image: Uint8Array = new Uint8Array(staging.read(W800_HEADER_SIZE + outer.imgLen, 0));
  if (isCompressed(outer)) {
    log.push("unxz...");
    try {
      image = xzDecompress(image.subarray(W800_HEADER_SIZE));
    } catch (e) {
      return `unxz failed: ${(e as Error).message}`;
    }
    log.push("unxz succeed");
  }
  const app = partitions.open(RUN_SLOT);
  const inner = imageProblem(() => {
    const h = checkHeader(image, layout, "installed");
    if (image.length !== W800_HEADER_SIZE + h.imgLen) throw new Error(`the image is ${image.length} bytes; its header says ${W800_HEADER_SIZE + h.imgLen}`);
    if (h.version !== outer.version) throw new Error(`the inner image is version '${h.version}', the outer '${outer.version}'`);
    // Checked before app is touched: a bad inner image must leave the old one running.
    const crc = nodeDigests.create("crc32");
    crc.update(image.subarray(W800_HEADER_SIZE));
    const sum = sdkCrcOfDigest(crc.finish());
    if (sum !== h.orgChecksum) throw new Error(`org_checksum 0x${h.orgChecksum.toString(16)} does not match the body's CRC 0x${sum.toString(16)}`);
  });
  if (inner !== undefined) return `the image to install: ${inner}`;
  const body = image.subarray(W800_HEADER_SIZE);
  log.push(`install ${decodeHeader(image).version}: ${body.length} bytes into ${RUN_SLOT}`);
  erase(app, layout.app.offset, W800_RUN_OFFSET + body.length);
  for (let at = 0; at < body.length; at += WRITE) app.write(body.subarray(at, at + WRITE), W800_RUN_OFFSET + at);
  app.write(image.subarray(0, W800_HEADER_SIZE), 0);
  const installed = imageProblem(() => checkW800Image(app, layout, "installed", nodeDigests));
  return installed === undefined ? undefined : `the installed image does not check out: ${installed}`;
}

/** Erases [0, length) of a partition at flash offset `base`: 64 KB blocks where aligned, 4 KB elsewhere. */
function erase(flash: Flash, base: number, length: number): void {
  const end = Math.ceil(length / SECTOR) * SECTOR;
  let at = 0;
  while (at < end) {
    const span = (base + at) % BLOCK === 0 && end - at >= BLOCK ? BLOCK : SECTOR;
    flash.eraseBlock(at / SECTOR, (at + span) / SECTOR);
    at += span;
  }
}

/** A check's result or its reason; flash failures (power cuts) go through. */
function attempt<T>(check: () => T): { value: T } | { why: string } {
  try {
    return { value: check() };
  } catch (e) {
    if (isOtaError(e, "image-invalid")) return { why: e.message };
    if (isOtaError(e)) throw e;
    return { why: (e as Error).message };
  }
}

function imageProblem(check: () => unknown): string | undefined {
  const r = attempt(check);
  return "why" in r ? r.why : undefined;
}

/** The program installed in app, for the simulator: its version and body. */
export function w800Program(partitions: SimPartitions, layout: W800Layout = W800_2MB_LAYOUT): { version: string; body: Uint8Array } {
  const app = partitions.open(RUN_SLOT);
  const header = checkW800Image(app, layout, "installed", nodeDigests);
  return { version: header.version, body: new Uint8Array(app.read(header.imgLen, W800_RUN_OFFSET)) };
}

/**
 * Factory programming, as the flasher writes a firmware: the (inner, for an XZ image) header at
 * app + 0 and its body at img_addr (app + 0x400), the rest of app erased.
 */
export function writeW800Factory(partitions: SimPartitions, image: Uint8Array): void {
  const header = decodeHeader(image.subarray(0, W800_HEADER_SIZE));
  const inner = isCompressed(header) ? xzDecompress(image.subarray(W800_HEADER_SIZE, W800_HEADER_SIZE + header.imgLen)) : image;
  const run = decodeHeader(inner.subarray(0, W800_HEADER_SIZE));
  const app = partitions.open(RUN_SLOT);
  const end = W800_RUN_OFFSET + run.imgLen;
  if (end > app.status().size) throw new OtaError("bad-argument", `the image (${end} bytes from app's start) does not fit app (${app.status().size} bytes)`);
  const writer = new ImageWriter(app, end);
  writer.write(inner.subarray(0, W800_HEADER_SIZE));
  writer.write(new Uint8Array(W800_RUN_OFFSET - W800_HEADER_SIZE).fill(0xff));
  writer.write(inner.subarray(W800_HEADER_SIZE, W800_HEADER_SIZE + run.imgLen));
}
