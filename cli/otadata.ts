/**
 * xs-ota otadata decode FILE [--slots N]
 * xs-ota otadata encode --seq N --state NAME [--seq N --state NAME] -o FILE
 */
import { writeFileSync } from "node:fs";
import { readInput } from "./files.ts";
import type { Io } from "./main.ts";
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

const USAGE = [
  "usage: xs-ota otadata decode FILE [--slots N]",
  "       xs-ota otadata encode --seq N --state NAME [--seq N --state NAME] -o FILE",
  "states: NEW PENDING_VERIFY VALID INVALID ABORTED UNDEFINED",
];

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

export function otadataCommand(args: string[], io: Io): number {
  const [sub, ...rest] = args;
  try {
    if (sub === "decode") return decode(rest, io);
    if (sub === "encode") return encode(rest, io);
  } catch (e) {
    if (!isOtaError(e)) throw e;
    io.err(`error: ${e.message}`);
    return 1;
  }
  USAGE.forEach((l) => io.err(l));
  return 2;
}

function describeEntry(i: number, e: OtaEntry, slots: number): string {
  const where = `entry ${i} (0x${(i * 0x1000).toString(16).padStart(4, "0")})`;
  if (e.seq === 0xffffffff && e.state === 0xffffffff && e.crc === 0xffffffff) return `${where}: blank`;
  const crc = crcOk(e) ? "valid" : `INVALID (expected ${hex(seqCrc(e.seq))})`;
  const slot = e.seq === 0xffffffff ? "no slot" : `selects ota_${seqSlot(e.seq, slots)}`;
  const usable = selectValid(e) ? "usable" : "not usable";
  return `${where}: seq ${e.seq === 0xffffffff ? "blank" : e.seq}, state ${stateName(e.state)}, crc ${hex(e.crc)} ${crc}; ${slot}, ${usable}`;
}

function decode(args: string[], io: Io): number {
  let file: string | undefined;
  let slots = 2;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--slots") slots = Number(args[++i]);
    else if (file === undefined) file = args[i];
    else return usage(io, `unexpected argument '${args[i]}'`);
  }
  if (!file) return usage(io, "decode needs a FILE");
  if (!Number.isInteger(slots) || slots < 1 || slots > 16) return usage(io, "--slots takes 1 to 16");
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

function encode(args: string[], io: Io): number {
  const seqs: number[] = [];
  const states: number[] = [];
  let out: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const value = args[i + 1];
    if (value === undefined) return usage(io, `${args[i]} needs a value`);
    if (args[i] === "--seq") {
      const seq = Number(value);
      if (!/^(0x[0-9a-f]+|\d+)$/i.test(value) || seq < 1 || seq >= 0xffffffff) return usage(io, `--seq takes 1 to 0xfffffffe, got '${value}'`);
      seqs.push(seq);
    } else if (args[i] === "--state") states.push(parseStateName(value));
    else if (args[i] === "-o" || args[i] === "--out") out = value;
    else return usage(io, `unknown option '${args[i]}'`);
    i++;
  }
  if (!out) return usage(io, "encode needs -o FILE");
  if (seqs.length < 1 || seqs.length > 2 || seqs.length !== states.length) return usage(io, "give one or two --seq N --state NAME pairs");
  const entries: [OtaEntry, OtaEntry] = [makeEntry(seqs[0], states[0]), seqs.length > 1 ? makeEntry(seqs[1], states[1]) : blankEntry()];
  writeFileSync(out, encodeOtadata(entries));
  entries.forEach((e, i) => io.out(describeEntry(i, e, 2)));
  io.out(`wrote ${out} (0x2000 bytes)`);
  return 0;
}

function usage(io: Io, problem: string): number {
  io.err(`xs-ota otadata: ${problem}`);
  USAGE.forEach((l) => io.err(l));
  return 2;
}
