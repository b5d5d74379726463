/**
 * The power-cut proof for the @AFRTOS staging layout (Nuvoton M487 with the Cloner), after
 * hosts/sim/power-cut.ts: one update cycle (stage the new image in ota_bank, verify, select,
 * restart through the Cloner, confirm, restart) replayed once per flash operation with the power
 * cut there (cleanly, after the first byte, or halfway). After each cut the device restarts and
 * runs as firmware would (an image on trial confirms), and its APROM is judged by its bytes: the
 * old image or the new one, each followed by erased flash, and nothing else. Portable.
 */
import { OtaError, isOtaError } from "../../modules/errors.ts";
import type { DigestFactory } from "../../modules/ports/digest.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { AfrStagingBootControl, DESCRIPTOR_PARTITION, RUN_SLOT, STAGING_SLOT, writeDescriptor } from "../../modules/afr-staging/boot-control.ts";
import { FLAGS, encodeDescriptor, makeDescriptor } from "../../modules/afr-staging/descriptor.ts";
import { afrStagingFormat } from "../../modules/afr-staging/format.ts";
import { NorFlash, type Tear } from "./nor-flash.ts";
import { SimPartitions, type PartitionExtent } from "./partitions.ts";
import { runCloner } from "./cloner.ts";

export type AfrPhase = "write" | "select" | "first boot" | "confirm" | "next boot";
export type AfrOutcome = "old" | "new" | "neither" | "unbootable";

export interface AfrSweepOptions {
  table: PartitionExtent[];
  flashSize: number;
  oldImage: Uint8Array;
  newImage: Uint8Array;
  signature?: Uint8Array;
  /** Bytes per ImageWriter.write call. */
  chunk: number;
  digests: DigestFactory;
}

export interface AfrCutPoint {
  operation: number;
  tear: Tear;
  phase: AfrPhase;
  outcome: AfrOutcome;
}

export interface AfrSweepResult {
  operations: number;
  points: AfrCutPoint[];
  /** Points whose APROM held neither image, or that did not boot. */
  broken: number;
  /** Cuts after the confirming flag byte landed that still ended on the old image. */
  revertedAfterConfirm: number;
  byPhase: Record<AfrPhase, { points: number; old: number; new: number }>;
}

export interface AfrDevice {
  flash: NorFlash;
  partitions: SimPartitions;
  boot: AfrStagingBootControl;
}

const PHASES: AfrPhase[] = ["write", "select", "first boot", "confirm", "next boot"];

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

export function afrPowerCutSweep(o: AfrSweepOptions): AfrSweepResult {
  const base = factoryDevice({ table: o.table, flashSize: o.flashSize, image: o.oldImage }).flash.data;
  const device = (): AfrDevice => {
    const flash = new NorFlash({ size: o.flashSize, data: base.slice() });
    const partitions = new SimPartitions(flash, o.table, RUN_SLOT);
    return { flash, partitions, boot: new AfrStagingBootControl(partitions) };
  };
  const start = (d: AfrDevice): void => {
    if (runCloner(d.partitions, o.digests).slot !== RUN_SLOT) throw new OtaError("boot-no-slot", "the Cloner could not complete");
  };

  const phases: [AfrPhase, number][] = [];
  const cycle = (d: AfrDevice) => {
    const mark = (phase: AfrPhase) => phases.push([phase, d.flash.operations]);
    mark("write");
    const writer = new ImageWriter(d.partitions.open(STAGING_SLOT), o.newImage.length);
    for (let at = 0; at < o.newImage.length; at += o.chunk) writer.write(o.newImage.subarray(at, at + o.chunk));
    writer.finish();
    afrStagingFormat.verify(d.partitions.open(STAGING_SLOT), o.newImage.length, o.digests);
    mark("select");
    d.boot.select(STAGING_SLOT, { length: o.newImage.length, signature: o.signature });
    mark("first boot");
    start(d);
    if (d.boot.info().state !== "pending") throw new OtaError("boot-state", "the new image did not start on trial");
    mark("confirm");
    d.boot.confirm();
    mark("next boot");
    start(d);
  };

  const dry = device();
  dry.flash.record = [];
  cycle(dry);
  if (apromHolds(dry.partitions, o.oldImage, o.newImage) !== "new") throw new OtaError("boot-state", "the uncut cycle did not install the new image");
  const operations = dry.flash.operations;
  const ops = dry.flash.record;
  const phaseOf = (op: number): AfrPhase => {
    let phase: AfrPhase = "write";
    for (const [p, from] of phases) if (op > from) phase = p;
    return phase;
  };

  const points: AfrCutPoint[] = [];
  for (let n = 1; n <= operations; n++) {
    const op = ops[n - 1];
    for (const tear of tearsFor(op.kind, op.length)) {
      const d = device();
      d.flash.cutAt(n, tear);
      try {
        cycle(d);
        throw new OtaError("boot-state", `operation ${n} was never reached`);
      } catch (e) {
        if (!isOtaError(e, "flash-power-cut")) throw e;
      }
      d.flash.powerOn();
      const phase = tear === "none" ? phaseOf(n - 1) : phaseOf(n);
      points.push({ operation: n, tear, phase, outcome: settle(d, start, o.oldImage, o.newImage) });
    }
  }

  const byPhase = {} as AfrSweepResult["byPhase"];
  for (const p of PHASES) byPhase[p] = { points: 0, old: 0, new: 0 };
  for (const p of points) {
    byPhase[p.phase].points++;
    if (p.outcome === "old" || p.outcome === "new") byPhase[p.phase][p.outcome]++;
  }
  return {
    operations,
    points,
    broken: points.filter((p) => p.outcome === "neither" || p.outcome === "unbootable").length,
    revertedAfterConfirm: points.filter((p) => (p.phase === "confirm" || p.phase === "next boot") && p.outcome === "old").length,
    byPhase,
  };
}

function tearsFor(kind: "erase" | "write", length: number): Tear[] {
  if (kind === "erase") return ["none", "half"];
  const tears: Tear[] = ["none"];
  if (length > 1) tears.push("first-byte");
  if (length >> 1 > 1) tears.push("half");
  return tears;
}

/** Restart, confirm if on trial (the self-test passes), restart twice more: APROM must not change. */
function settle(d: AfrDevice, start: (d: AfrDevice) => void, oldImage: Uint8Array, newImage: Uint8Array): AfrOutcome {
  try {
    start(d);
    if (d.boot.info().state === "pending") {
      d.boot.confirm();
      start(d);
    }
    const held = apromHolds(d.partitions, oldImage, newImage);
    for (let i = 0; i < 2; i++) {
      start(d);
      const again = apromHolds(d.partitions, oldImage, newImage);
      if (again !== held) throw new OtaError("boot-state", `APROM changed from ${held} to ${again} without an update`);
    }
    return held;
  } catch (e) {
    if (isOtaError(e, "boot-no-slot")) return "unbootable";
    throw e;
  }
}
