/**
 * xs-ota otadata decode FILE [--slots N]
 * xs-ota otadata encode --seq N --state NAME [--seq N --state NAME] -o FILE
 */
import { writeFileSync } from "node:fs";
import { readInput } from "./files.ts";
import type { Io } from "./main.ts";
import { runGroup, withArgsSync, type Args, type CommandSpec, type Group } from "./args.ts";
import { isOtaError } from "../modules/errors.ts";
import {
  OTADATA_SIZE,
  blankEntry,
  bootOrder,
  crcOk,
  decodeOtadata,
  encodeOtadata,
  makeEntry,
  parseStateName,
  planBoot,
  selectValid,
  seqCrc,
  seqSlot,
  stateName,
  type OtaEntry,
} from "../modules/esp-idf/otadata.ts";

const STATES = "states: NEW PENDING_VERIFY VALID INVALID ABORTED UNDEFINED";

export const OTADATA_DECODE: CommandSpec = {
  name: "otadata decode",
  usage: ["otadata decode FILE [--slots N]"],
  about: ["Decodes an otadata partition dump: each entry, what the bootloader writes, and the slot it boots."],
  options: { slots: { type: "string", value: "N", description: "how many OTA slots the table has (default 2)" } },
  positionals: { min: 1, max: 1, name: "FILE (the otadata dump)" },
};

export const OTADATA_ENCODE: CommandSpec = {
  name: "otadata encode",
  usage: ["otadata encode --seq N --state NAME [--seq N --state NAME] -o FILE"],
  about: ["Writes an otadata partition with one or two entries.", STATES],
  options: {
    seq: { type: "string", value: "N", multiple: true, description: "an entry's sequence number, 1 to 0xfffffffe" },
    state: { type: "string", value: "NAME", multiple: true, description: "the entry's state" },
    out: { type: "string", short: "o", value: "FILE", required: true, description: "where to write the 0x2000 bytes" },
  },
};

const GROUP: Group = {
  name: "otadata",
  subcommands: {
    decode: { spec: OTADATA_DECODE, run: (args, io) => withArgsSync(OTADATA_DECODE, args, io, (a) => guarded(io, () => decode(a, io))) },
    encode: { spec: OTADATA_ENCODE, run: (args, io) => withArgsSync(OTADATA_ENCODE, args, io, (a) => guarded(io, () => encode(a, io))) },
  },
};

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

export function otadataCommand(args: string[], io: Io): number | Promise<number> {
  return runGroup(GROUP, args, io);
}

/** An OtaError (a state name that does not exist, say) is the user's input: one line, exit 1. */
function guarded(io: Io, run: () => number): number {
  try {
    return run();
  } catch (e) {
    if (!isOtaError(e)) throw e;
    io.err(`error: ${e.message}`);
    return 1;
  }
}

function describeEntry(i: number, e: OtaEntry, slots: number): string {
  const where = `entry ${i} (0x${(i * 0x1000).toString(16).padStart(4, "0")})`;
  if (e.seq === 0xffffffff && e.state === 0xffffffff && e.crc === 0xffffffff) return `${where}: blank`;
  const crc = crcOk(e) ? "valid" : `INVALID (expected ${hex(seqCrc(e.seq))})`;
  const slot = e.seq === 0xffffffff ? "no slot" : `selects ota_${seqSlot(e.seq, slots)}`;
  const usable = selectValid(e) ? "usable" : "not usable";
  return `${where}: seq ${e.seq === 0xffffffff ? "blank" : e.seq}, state ${stateName(e.state)}, crc ${hex(e.crc)} ${crc}; ${slot}, ${usable}`;
}

function decode(a: Args, io: Io): number {
  const file = a.positionals[0] ?? "";
  const slotsText = a.string("slots") ?? "2";
  const slots = /^[0-9]+$/.test(slotsText) ? Number(slotsText) : NaN;
  if (!Number.isInteger(slots) || slots < 1 || slots > 16) a.fail("--slots takes 1 to 16");
  const bytes = readInput(file, "the otadata dump");
  if (bytes.length !== OTADATA_SIZE) io.err(`warning: ${file} is 0x${bytes.length.toString(16)} bytes; otadata is 0x2000`);
  const entries = decodeOtadata(bytes);
  entries.forEach((e, i) => io.out(describeEntry(i, e, slots)));
  const plan = planBoot(entries, slots);
  for (const w of plan.writes) io.out(`bootloader writes: entry ${w.sector} -> ${stateName(w.entry.state)}`);
  if (plan.initial) io.out("bootloader writes: entry 0 -> seq 1 VALID (otadata blank or corrupt, no factory slot)");
  else if (plan.start < 0) io.out("no usable entry: the bootloader tries slots from ota_0");
  io.out(`boot: ota_${bootOrder(plan.start, slots)[0]}`);
  return 0;
}

function encode(a: Args, io: Io): number {
  const seqs: number[] = [];
  for (const value of a.list("seq")) {
    const seq = Number(value);
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(value) || seq < 1 || seq >= 0xffffffff) a.fail(`--seq takes 1 to 0xfffffffe, got '${value}'`);
    seqs.push(seq);
  }
  const states = a.list("state").map(parseStateName);
  const out = a.string("out") ?? "";
  if (seqs.length < 1 || seqs.length > 2 || seqs.length !== states.length) a.fail("give one or two --seq N --state NAME pairs");
  const entries: [OtaEntry, OtaEntry] = [makeEntry(seqs[0], states[0]), seqs.length > 1 ? makeEntry(seqs[1], states[1]) : blankEntry()];
  writeFileSync(out, encodeOtadata(entries));
  entries.forEach((e, i) => io.out(describeEntry(i, e, 2)));
  io.out(`wrote ${out} (0x2000 bytes)`);
  return 0;
}
