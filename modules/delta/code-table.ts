/**
 * RFC 3284's instruction encoding: the default code table (section 5.6) and the address cache
 * (section 5.1, s_near 4 and s_same 3). Patches with their own code table (VCD_CODETABLE) are
 * refused before these are used, so the default table is the only one.
 */
import { OtaError } from "../errors.ts";
import type { Cursor } from "./cursor.ts";

export const NOOP = 0;
export const ADD = 1;
export const RUN = 2;
export const COPY = 3;

const NEAR = 4;
const SAME = 3;
/** Modes 0 (self) and 1 (here), then the near modes, then the same modes. */
const FIRST_SAME = 2 + NEAR;
export const MODES = FIRST_SAME + SAME;

/** The 256 opcodes as six columns: each opcode is up to two (type, size, mode) instructions; size 0 means "read it". */
export interface CodeTable {
  type1: Uint8Array;
  size1: Uint8Array;
  mode1: Uint8Array;
  type2: Uint8Array;
  size2: Uint8Array;
  mode2: Uint8Array;
}

/** Built rather than written out: the table is regular, and a literal of 1,536 numbers hides a typo well. */
export function defaultCodeTable(): CodeTable {
  const t: CodeTable = {
    type1: new Uint8Array(256),
    size1: new Uint8Array(256),
    mode1: new Uint8Array(256),
    type2: new Uint8Array(256),
    size2: new Uint8Array(256),
    mode2: new Uint8Array(256),
  };
  let i = 0;
  const put = (type1: number, size1: number, mode1: number, type2: number, size2: number, mode2: number) => {
    t.type1[i] = type1;
    t.size1[i] = size1;
    t.mode1[i] = mode1;
    t.type2[i] = type2;
    t.size2[i] = size2;
    t.mode2[i] = mode2;
    i++;
  };
  put(RUN, 0, 0, NOOP, 0, 0);
  for (let size = 0; size <= 17; size++) put(ADD, size, 0, NOOP, 0, 0);
  for (let mode = 0; mode < MODES; mode++) {
    put(COPY, 0, mode, NOOP, 0, 0);
    for (let size = 4; size <= 18; size++) put(COPY, size, mode, NOOP, 0, 0);
  }
  for (let mode = 0; mode < MODES; mode++) {
    // ADD+COPY pairs: copy sizes 4 to 6 with the near modes, only 4 with the same modes.
    const maxCopy = mode < FIRST_SAME ? 6 : 4;
    for (let add = 1; add <= 4; add++) for (let copy = 4; copy <= maxCopy; copy++) put(ADD, add, 0, COPY, copy, mode);
  }
  for (let mode = 0; mode < MODES; mode++) put(COPY, 4, mode, ADD, 1, 0);
  if (i !== 256) throw new OtaError("bad-argument", `default code table has ${i} entries`);
  return t;
}

/** The address cache of section 5.1, reset at the start of every window. */
export class AddressCache {
  readonly #near = new Uint32Array(NEAR);
  readonly #same = new Uint32Array(SAME * 256);
  #next = 0;

  reset(): void {
    this.#near.fill(0);
    this.#same.fill(0);
    this.#next = 0;
  }

  /**
   * The address of a COPY in mode `mode`, read from the addresses section, where `here` is the
   * address of the COPY's first target byte (source segment length + target bytes so far).
   * Only addresses below `here` are refused here; the caller knows what they mean.
   */
  decode(mode: number, here: number, addresses: Cursor): number {
    let addr: number;
    if (mode === 0) addr = addresses.integer("a COPY address");
    else if (mode === 1) {
      const back = addresses.integer("a COPY address");
      if (back > here) addresses.fail(`a COPY address ${back} bytes before here (${here}) lies before the source segment`);
      addr = here - back;
    } else if (mode < FIRST_SAME) addr = this.#near[mode - 2] + addresses.integer("a COPY address");
    else addr = this.#same[(mode - FIRST_SAME) * 256 + addresses.byte("a COPY address")];
    if (addr >= here) addresses.fail(`a COPY from address ${addr}, but only ${here} bytes (source segment and target so far) are addressable`);
    this.#near[this.#next] = addr;
    this.#next = (this.#next + 1) % NEAR;
    this.#same[addr % (SAME * 256)] = addr;
    return addr;
  }
}
