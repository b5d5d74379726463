/**
 * The power-cut proof: one update cycle on a simulated ESP32 (write the image into the inactive
 * slot, verify it, select it, restart, confirm after the self-test, restart), replayed once per
 * flash operation with the power cut at that operation (cleanly, or torn after its first byte or
 * halfway). After each cut the device restarts through its bootloader and carries on as the
 * firmware would: a new image that finds itself on trial confirms again. What it ends up running
 * is recorded. Portable: runs on Node for `npm run powercut` and on XS in the contract suite.
 */
import type { Digest } from "../../modules/ports/digest.ts";
import { OtaError, isOtaError } from "../../modules/errors.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { OtadataBootControl, type WriteOrder } from "../../modules/esp-idf/boot-control.ts";
import { verifyImage } from "../../modules/esp-idf/image.ts";
import { NorFlash, type Tear } from "./nor-flash.ts";
import { SimPartitions, type PartitionExtent } from "./partitions.ts";
import { runBootloader, type ImageCheck } from "./bootloader.ts";

export type Phase = "write" | "select" | "first boot" | "confirm" | "next boot";
export type Outcome = "old" | "new" | "unbootable";

export interface SweepOptions {
  table: PartitionExtent[];
  flashSize: number;
  oldImage: Uint8Array;
  newImage: Uint8Array;
  /** Bytes per ImageWriter.write call: what the transfer layer hands over at a time. */
  chunk: number;
  order?: WriteOrder;
  sha256: () => Digest;
}

export interface CutPoint {
  operation: number;
  tear: Tear;
  phase: Phase;
  outcome: Outcome;
}

export interface SweepResult {
  operations: number;
  points: CutPoint[];
  unbootable: number;
  revertedAfterConfirm: number;
  byPhase: Record<Phase, { points: number; old: number; new: number; unbootable: number }>;
}

interface Device {
  flash: NorFlash;
  partitions: SimPartitions;
  boot: OtadataBootControl;
}

export function powerCutSweep(o: SweepOptions): SweepResult {
  const check: ImageCheck = (slot) => {
    try {
      verifyImage(slot, o.sha256);
      return undefined;
    } catch (e) {
      if (isOtaError(e, "image-invalid")) return e.message;
      throw e;
    }
  };
  const device = (data: Uint8Array): Device => {
    const flash = new NorFlash({ size: o.flashSize, data });
    const partitions = new SimPartitions(flash, o.table);
    return { flash, partitions, boot: new OtadataBootControl(partitions, { order: o.order }) };
  };
  const start = (d: Device): string => {
    const slot = runBootloader(d.partitions, check).slot;
    if (!slot) throw new OtaError("boot-no-slot", "the device does not boot");
    return slot;
  };

  // Factory state: the old image in ota_0, otadata blank, one boot (which initialises otadata).
  const factory = device(new Uint8Array(o.flashSize).fill(0xff));
  const firstSlot = factory.partitions.appSlots()[0];
  new ImageWriter(factory.partitions.open(firstSlot), o.oldImage.length).write(o.oldImage);
  const oldSlot = start(factory);
  const base = factory.flash.data;
  const newSlot = factory.boot.info().updateSlot;

  const phases: [Phase, number][] = [];
  const cycle = (d: Device) => {
    const mark = (phase: Phase) => phases.push([phase, d.flash.operations]);
    mark("write");
    const writer = new ImageWriter(d.partitions.open(newSlot), o.newImage.length);
    for (let at = 0; at < o.newImage.length; at += o.chunk) writer.write(o.newImage.subarray(at, at + o.chunk));
    writer.finish();
    verifyImage(d.partitions.open(newSlot), o.sha256);
    mark("select");
    d.boot.select(newSlot);
    mark("first boot");
    if (start(d) !== newSlot) throw new OtaError("boot-state", "the selected image did not start");
    mark("confirm");
    d.boot.confirm();
    mark("next boot");
    if (start(d) !== newSlot) throw new OtaError("boot-state", "the confirmed image did not start again");
  };

  // A run without cuts: counts the operations and where each phase begins.
  const dry = device(base.slice());
  dry.flash.record = [];
  cycle(dry);
  const operations = dry.flash.operations;
  const ops = dry.flash.record;
  /** The phase operation `op` belongs to (operation 0: before the cycle). */
  const phaseOf = (op: number): Phase => {
    let phase: Phase = "write";
    for (const [p, from] of phases) if (op > from) phase = p;
    return phase;
  };

  const points: CutPoint[] = [];
  for (let n = 1; n <= operations; n++) {
    const op = ops[n - 1];
    for (const tear of tearsFor(op.kind, op.length)) {
      const d = device(base.slice());
      d.flash.cutAt(n, tear);
      try {
        cycle(d);
        throw new OtaError("boot-state", `operation ${n} was never reached`);
      } catch (e) {
        if (!isOtaError(e, "flash-power-cut")) throw e;
      }
      d.flash.powerOn();
      // A clean cut at n leaves the state after operation n - 1: that is the phase it belongs to.
      const phase = tear === "none" ? phaseOf(n - 1) : phaseOf(n);
      points.push({ operation: n, tear, phase, outcome: settle(d, start, oldSlot, newSlot) });
    }
  }

  const byPhase = {} as SweepResult["byPhase"];
  for (const p of ["write", "select", "first boot", "confirm", "next boot"] as Phase[]) byPhase[p] = { points: 0, old: 0, new: 0, unbootable: 0 };
  for (const p of points) {
    byPhase[p.phase].points++;
    byPhase[p.phase][p.outcome]++;
  }
  return {
    operations,
    points,
    unbootable: points.filter((p) => p.outcome === "unbootable").length,
    revertedAfterConfirm: points.filter((p) => (p.phase === "confirm" || p.phase === "next boot") && p.outcome === "old").length,
    byPhase,
  };
}

/** Distinct ways an operation can be cut: not at all landed, first byte, first half. */
function tearsFor(kind: "erase" | "write", length: number): Tear[] {
  if (kind === "erase") return ["none", "half"];
  const tears: Tear[] = ["none"];
  if (length > 1) tears.push("first-byte");
  if (length >> 1 > 1) tears.push("half");
  return tears;
}

/**
 * After a cut: restart and run as the firmware would. The new image on trial confirms (its
 * self-test passes); the old image leaves otadata alone. Two more restarts check it stays put.
 */
function settle(d: Device, start: (d: Device) => string, oldSlot: string, newSlot: string): Outcome {
  try {
    let slot = start(d);
    if (slot === newSlot && d.boot.info().state !== "valid") {
      d.boot.confirm();
      slot = start(d);
    }
    for (let i = 0; i < 2; i++) {
      const again = start(d);
      if (again !== slot) throw new OtaError("boot-state", `boot slot changed from ${slot} to ${again} without an update`);
    }
    return slot === newSlot ? "new" : slot === oldSlot ? "old" : "unbootable";
  } catch (e) {
    if (isOtaError(e, "boot-no-slot")) return "unbootable";
    throw e;
  }
}
