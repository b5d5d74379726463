/**
 * The power-cut proof: one update cycle on a simulated board (write the image into the update
 * slot, verify it, select it, restart, so the bootloader starts it or installs it first,
 * confirm after the self-test, restart), replayed once per flash operation with the power cut
 * at that operation (cleanly, or torn after its first byte or halfway). After each cut the device
 * restarts through its bootloader and carries on as the firmware would: a new image that finds
 * itself on trial confirms again. What it ends up running is recorded. The board (its image
 * format, boot control, bootloader and how to tell which image runs) is a SweepBoard; ESP-IDF's
 * A/B layout is the default. Portable: runs on Node for `npm run powercut` and on XS in the
 * contract suite.
 */
import type { BootControl } from "../../modules/ports/boot-control.ts";
import type { Digest, DigestFactory } from "../../modules/ports/digest.ts";
import type { ImageFormat } from "../../modules/ports/image-format.ts";
import { OtaError, isOtaError } from "../../modules/errors.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { OtadataBootControl, type WriteOrder } from "../../modules/esp-idf/boot-control.ts";
import { espIdfFormat } from "../../modules/esp-idf/format.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import { NorFlash, type Tear } from "./nor-flash.ts";
import { SimPartitions, type PartitionExtent } from "./partitions.ts";
import { espImageCheck, runBootloader } from "./bootloader.ts";
import { MemoryStateStore } from "./state-store.ts";
import { HeaderGate } from "../../modules/transfer/header-gate.ts";
import { DELTA_KEY, PatchApply, loadCheckpoint, patchArea } from "../../modules/transfer/patch.ts";


export type Phase = "write" | "select" | "first boot" | "confirm" | "next boot";
export type Outcome = "old" | "new" | "unbootable";

/** What the sweep needs to know of a board. */
export interface SweepBoard {
  /** The slot a factory-fresh device runs (and the factory image is written to). */
  firstSlot: string;
  format: ImageFormat;
  boot(partitions: SimPartitions): BootControl;
  /** Runs the bootloader (and any install it makes): the slot it starts, or undefined. */
  start(partitions: SimPartitions): string | undefined;
  /** Which of the two images the started slot runs, judged from flash. */
  identify(partitions: SimPartitions, slot: string): Outcome;
  /** Factory programming of the old image (default: written into `firstSlot`, boot data blank). */
  factory?(partitions: SimPartitions, image: Uint8Array): void;
}

export interface SweepOptions {
  table: PartitionExtent[];
  flashSize: number;
  oldImage: Uint8Array;
  newImage: Uint8Array;
  /** Bytes per ImageWriter.write call: what the transfer layer hands over at a time. */
  chunk: number;
  order?: WriteOrder;
  sha256: () => Digest;
  /** What the format's check hashes with (default @noble's, which runs everywhere). */
  digests?: DigestFactory;
  /** The board; by default ESP-IDF A/B with otadata (in `order`). */
  board?: SweepBoard;
  /** The job's signature bytes, handed to `select` (an @AFRTOS trailer keeps them). */
  signature?: Uint8Array;
  /**
   * The new image's self-test verdict (default "passes": it confirms). "fails": it rejects
   * itself, and the cycle ends on what the layout falls back to.
   */
  selfTest?: "passes" | "fails";
  /**
   * A delta cycle: the write phase puts this patch (old image -> new image, VCDIFF) into the
   * update slot's end and rebuilds the new image from the running one with it, recording its
   * progress as the device does (modules/transfer/patch.ts). After a cut in that phase the device
   * boots the old image, then finishes the update from its records.
   */
  patch?: Uint8Array;
}

export interface CutPoint {
  operation: number;
  tear: Tear;
  phase: Phase;
  outcome: Outcome;
}

export interface SweepResult {
  /** What a failed self-test falls back to ("fails" sweeps): the old image, or the new one where the layout keeps none. */
  fallback?: Outcome;
  operations: number;
  points: CutPoint[];
  unbootable: number;
  revertedAfterConfirm: number;
  /** Delta cycles: cuts while the patch was written or applied after which the update then finished (all of them, or the sweep throws). */
  finishedAfterCut?: number;
  byPhase: Record<Phase, { points: number; old: number; new: number; unbootable: number }>;
}

interface Device {
  flash: NorFlash;
  partitions: SimPartitions;
  boot: BootControl;
  /** NVS: its writes are atomic (the StateStore contract), so it is not cut here. */
  store: MemoryStateStore;
}

/** ESP-IDF's layout: otadata A/B, the simulated second-stage bootloader with rollback. */
export function espSweepBoard(sha256: () => Digest, order?: WriteOrder): SweepBoard {
  const check = espImageCheck(sha256);
  return {
    firstSlot: "ota_0",
    format: espIdfFormat,
    boot: (partitions) => new OtadataBootControl(partitions, { order }),
    start: (partitions) => runBootloader(partitions, check).slot,
    identify: (partitions, slot) => (slot === partitions.appSlots()[0] ? "old" : "new"),
  };
}

export function powerCutSweep(o: SweepOptions): SweepResult {
  const board = o.board ?? espSweepBoard(o.sha256, o.order);
  const digests: DigestFactory = o.digests ?? nobleDigests;
  const device = (data: Uint8Array): Device => {
    const flash = new NorFlash({ size: o.flashSize, data });
    const partitions = new SimPartitions(flash, o.table, board.firstSlot);
    return { flash, partitions, boot: board.boot(partitions), store: new MemoryStateStore() };
  };
  const start = (d: Device): string => {
    const slot = board.start(d.partitions);
    if (!slot) throw new OtaError("boot-no-slot", "the device does not boot");
    return slot;
  };

  // Factory state: the old image in the first slot, boot data blank, one boot (which initialises it).
  const factory = device(new Uint8Array(o.flashSize).fill(0xff));
  if (board.factory) board.factory(factory.partitions, o.oldImage);
  else new ImageWriter(factory.partitions.open(board.firstSlot), o.oldImage.length).write(o.oldImage);
  start(factory);
  const base = factory.flash.data;
  const newSlot = factory.boot.info().updateSlot;

  /** The patch into the slot's end (unless the records say it is there), then applied from where the records say. */
  const applyDelta = (d: Device, patch: Uint8Array) => {
    const slot = d.partitions.open(newSlot);
    const area = patchArea(slot, o.newImage.length, patch.length);
    if (!area) throw new OtaError("image-too-large", "the update slot cannot hold the image and the patch");
    const resume = loadCheckpoint(d.store, o.newImage.length, patch.length, slot.status().blockLength);
    if (!resume) {
      const writer = new ImageWriter(area, patch.length);
      for (let at = 0; at < patch.length; at += o.chunk) writer.write(patch.subarray(at, at + o.chunk));
      writer.finish();
    }
    const check = (prefix: Uint8Array) => board.format.parsePrefix(prefix);
    const work = new PatchApply({
      patch: area,
      patchSize: patch.length,
      source: d.partitions.open(board.firstSlot),
      sourceSize: o.oldImage.length,
      slot,
      size: o.newImage.length,
      store: d.store,
      digests: [o.sha256()],
      gate: (written) => new HeaderGate(board.format, o.newImage.length, check, written, (n) => new Uint8Array(slot.read(n, 0))),
      erase: {},
      ...(resume ? { resume } : {}),
    });
    while (!work.step());
    d.store.delete(DELTA_KEY);
  };

  const fails = o.selfTest === "fails";
  let fallback: Outcome | undefined;
  const phases: [Phase, number][] = [];
  let dry: Device | undefined;
  const cycle = (d: Device) => {
    // Where each phase begins is taken from the dry run only.
    const mark = (phase: Phase) => void (d === dry && phases.push([phase, d.flash.operations]));
    mark("write");
    if (o.patch) applyDelta(d, o.patch);
    else {
      const writer = new ImageWriter(d.partitions.open(newSlot), o.newImage.length);
      for (let at = 0; at < o.newImage.length; at += o.chunk) writer.write(o.newImage.subarray(at, at + o.chunk));
      writer.finish();
    }
    board.format.verify(d.partitions.open(newSlot), o.newImage.length, digests);
    mark("select");
    d.boot.select(newSlot, { length: o.newImage.length, signature: o.signature });
    mark("first boot");
    if (board.identify(d.partitions, start(d)) !== "new") throw new OtaError("boot-state", "the selected image did not start");
    mark("confirm");
    if (fails) {
      const expected: Outcome = d.boot.reject() ? "old" : "new";
      fallback ??= expected;
      mark("next boot");
      if (board.identify(d.partitions, start(d)) !== expected) throw new OtaError("boot-state", `a rejected image did not end on the ${expected} one`);
      return;
    }
    d.boot.confirm();
    mark("next boot");
    if (board.identify(d.partitions, start(d)) !== "new") throw new OtaError("boot-state", "the confirmed image did not start again");
  };

  // A run without cuts: counts the operations and where each phase begins.
  dry = device(base.slice());
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
  let finishedAfterCut = 0;
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
      const outcome = settle(d, board, start, fails);
      points.push({ operation: n, tear, phase, outcome });
      if (o.patch && phase === "write" && outcome === "old") {
        // The old image runs again; the agent on it goes on with the job from its records.
        cycle(d);
        finishedAfterCut++;
      }
    }
  }

  const byPhase = {} as SweepResult["byPhase"];
  for (const p of ["write", "select", "first boot", "confirm", "next boot"] as Phase[]) byPhase[p] = { points: 0, old: 0, new: 0, unbootable: 0 };
  for (const p of points) {
    byPhase[p.phase].points++;
    byPhase[p.phase][p.outcome]++;
  }
  return {
    fallback,
    operations,
    points,
    unbootable: points.filter((p) => p.outcome === "unbootable").length,
    revertedAfterConfirm: fails ? 0 : points.filter((p) => (p.phase === "confirm" || p.phase === "next boot") && p.outcome === "old").length,
    ...(o.patch ? { finishedAfterCut } : {}),
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
 * self-test passes) or rejects itself (`fails`); the old image leaves the boot data alone. Two
 * more restarts check it stays.
 */
function settle(d: Device, board: SweepBoard, start: (d: Device) => string, fails: boolean): Outcome {
  try {
    let slot = start(d);
    const state = d.boot.info().state;
    if (board.identify(d.partitions, slot) === "new" && (fails ? state === "pending" : state !== "valid")) {
      if (fails) d.boot.reject();
      else d.boot.confirm();
      slot = start(d);
    }
    const outcome = board.identify(d.partitions, slot);
    for (let i = 0; i < 2; i++) {
      const again = board.identify(d.partitions, start(d));
      if (again !== outcome) throw new OtaError("boot-state", `the device went from the ${outcome} image to the ${again} one without an update`);
    }
    return outcome;
  } catch (e) {
    if (isOtaError(e, "boot-no-slot")) return "unbootable";
    throw e;
  }
}
