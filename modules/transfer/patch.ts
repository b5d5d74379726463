/**
 * Delta updates on the device: a VCDIFF patch (modules/delta) rebuilds the new image from the
 * running one, straight into the update slot.
 *
 * - The patch is checked against the device first: it applies only to the image it was made
 *   from, so the running slot's first `sourceSize` bytes must have the offer's SHA-256. That is
 *   read before anything is erased; any other device takes the full image.
 * - The patch is downloaded into the end of the update slot, past the new image's last block,
 *   like any file (same resume records), and checked against its own SHA-256 before use.
 * - Applying reads the running slot (never written) and the patch, and writes the image from the
 *   slot's start. At every window that ends on a flash block, one StateStore record says where
 *   patch and image stand, so after a power cut the work goes on from the last such window; the
 *   image's digests are rebuilt from what flash holds, as a resumed download does.
 * - The result is then the plan's image, checked as any downloaded image is: the signature and
 *   digest of the full image, then the bootloader's own checks.
 */
import type { Clock } from "../ports/clock.ts";
import type { Digest, DigestFactory } from "../ports/digest.ts";
import type { Flash } from "../ports/flash.ts";
import type { StateStore } from "../ports/state-store.ts";
import type { DeltaOffer } from "../jobs/plan.ts";
import { OtaError } from "../errors.ts";
import { toHex } from "../codec/bytes.ts";
import { FlashRegion } from "../storage/flash-region.ts";
import { ImageWriter, type EraseOptions } from "../storage/image-writer.ts";
import { resumeImage } from "./progress.ts";
import type { HeaderGate } from "./header-gate.ts";
import { VcdiffApplier, type DeltaCheckpoint } from "../delta/vcdiff.ts";

/** The apply checkpoint: patch offset and image offset of a window start (u32 each, big-endian). */
export const DELTA_KEY = "ota.delta";
/** Image bytes produced between yields to the event loop (MQTT keep-alive, timers). */
const STEP = 16 * 1024;
const READ = 16 * 1024;

/** Where the patch lies while it is applied: the slot's last whole blocks, clear of the image's. */
export function patchArea(slot: Flash, imageSize: number, patchSize: number): Flash | undefined {
  const { size, blockLength: bl } = slot.status();
  const length = Math.ceil(patchSize / bl) * bl;
  const start = size - length;
  if (length <= 0 || start < Math.ceil(imageSize / bl) * bl) return undefined;
  return new FlashRegion(slot, start, length);
}

/** Whether `source` starts with the image the patch was made from. */
export function isPatchSource(source: Flash, delta: DeltaOffer, digests: DigestFactory): boolean {
  if (delta.sourceSize > source.status().size) return false;
  const d = digests.create("sha256");
  for (let at = 0; at < delta.sourceSize; at += READ) d.update(source.read(Math.min(READ, delta.sourceSize - at), at));
  return toHex(d.finish()) === delta.sourceSha256;
}

export function loadCheckpoint(store: StateStore, imageSize: number, patchSize: number, blockLength: number): DeltaCheckpoint | undefined {
  const r = store.get(DELTA_KEY);
  if (!r || r.length !== 8) return undefined;
  const v = new DataView(r.buffer, r.byteOffset, 8);
  const c = { patchOffset: v.getUint32(0), targetOffset: v.getUint32(4) };
  // Only what this module writes: a window start inside both files, on a block boundary.
  if (c.patchOffset >= patchSize || c.targetOffset >= imageSize || c.targetOffset % blockLength) return undefined;
  return c;
}

export function saveCheckpoint(store: StateStore, c: DeltaCheckpoint): void {
  const r = new Uint8Array(8);
  const v = new DataView(r.buffer);
  v.setUint32(0, c.patchOffset);
  v.setUint32(4, c.targetOffset);
  store.set(DELTA_KEY, r);
}

export interface ApplyPatchOptions {
  patch: Flash;
  patchSize: number;
  source: Flash;
  sourceSize: number;
  slot: Flash;
  /** The image's size (the plan's). */
  size: number;
  store: StateStore;
  /** The image's digests (SHA-256 first), fed in file order. */
  digests: Digest[];
  /** Checks the image header before any of it reaches flash (created at the resume point). */
  gate: (written: number) => HeaderGate;
  erase: EraseOptions;
  /** Where the last run stopped (loadCheckpoint), or undefined to start at the beginning. */
  resume?: DeltaCheckpoint;
}


/**
 * Applying, one step at a time (synchronous: the power-cut sweep drives it directly; on the
 * device `applyPatch` yields to the event loop between steps).
 */
export class PatchApply {
  readonly #o: ApplyPatchOptions;
  readonly #writer: ImageWriter;
  readonly #gate: HeaderGate;
  readonly #applier: VcdiffApplier;
  readonly #block: number;
  #produced: number;
  #recorded: number;

  constructor(o: ApplyPatchOptions) {
    this.#o = o;
    this.#block = o.slot.status().blockLength;
    const from = o.resume?.targetOffset ?? 0;
    const writer = from > 0 ? resumeImage(o.slot, o.size, from, o.digests, { ...o.erase, wholeSlot: false }) : new ImageWriter(o.slot, o.size, o.erase);
    if (writer.offset !== from) throw new OtaError("image-offset", `the patch's checkpoint at ${from} is not where the image can resume (${writer.offset})`);
    this.#writer = writer;
    this.#gate = o.gate(from);
    this.#produced = from;
    this.#recorded = from;
    this.#applier = new VcdiffApplier({
      patch: o.patch,
      patchSize: o.patchSize,
      source: o.source,
      sourceSize: o.sourceSize,
      targetSize: o.size,
      target: { read: (length: number, offset: number) => this.#readTarget(length, offset) },
      write: (bytes: Uint8Array) => this.#write(bytes),
      ...(o.resume ? { resume: o.resume } : {}),
    });
    // The patch is in flash and checked: from now on a restart applies it again, never fetches it.
    if (!o.resume) saveCheckpoint(o.store, this.#applier.checkpoint);
  }

  /** Image bytes in flash so far. */
  get written(): number {
    return this.#writer.offset;
  }

  /** Produces about `STEP` more image bytes; true once the image is complete. */
  step(): boolean {
    const done = this.#applier.step(STEP);
    const c = this.#applier.checkpoint;
    // A record never runs ahead of flash: its window's bytes are all written (none held back).
    if (c.targetOffset > this.#recorded && c.targetOffset % this.#block === 0 && c.targetOffset <= this.#writer.offset && c.targetOffset < this.#o.size) {
      saveCheckpoint(this.#o.store, c);
      this.#recorded = c.targetOffset;
    }
    if (!done) return false;
    if (this.#produced !== this.#o.size) throw new OtaError("image-incomplete", `the patch rebuilt ${this.#produced} bytes; the image has ${this.#o.size}`);
    this.#writer.finish();
    return true;
  }

  // COPYs from the image read back what is written, and the header bytes the gate still holds.
  #readTarget(length: number, offset: number): ArrayBuffer {
    const writer = this.#writer;
    const out = new Uint8Array(length);
    const flashed = Math.max(0, Math.min(length, writer.offset - offset));
    if (flashed > 0) out.set(new Uint8Array(this.#o.slot.read(flashed, offset)));
    if (flashed < length) {
      const held = this.#gate.pending.subarray(offset + flashed - writer.offset, offset + length - writer.offset);
      if (held.length !== length - flashed) throw new OtaError("image-offset", `the patch reads image bytes ${offset}+${length} not produced yet`);
      out.set(held, flashed);
    }
    return out.buffer;
  }

  #write(bytes: Uint8Array): void {
    const out = this.#gate.take(bytes, this.#produced);
    this.#produced += bytes.length;
    if (out.length === 0) return;
    this.#writer.write(out);
    for (const d of this.#o.digests) d.update(out);
  }
}

/** Applies the patch into the slot, yielding to the event loop between steps; resolves once the whole image is in flash. */
export async function applyPatch(o: ApplyPatchOptions, clock: Clock, cancelled: () => boolean): Promise<void> {
  const work = new PatchApply(o);
  for (;;) {
    if (cancelled()) throw new OtaError("cancelled", "the patch was abandoned");
    if (work.step()) return;
    await new Promise<void>((resolve) => clock.setTimer(0, resolve));
  }
}
