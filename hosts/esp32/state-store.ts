/**
 * The StateStore port over Moddable's Preference, which ESP32 keeps in ESP-IDF's NVS: keys and
 * domains of at most 15 characters, values of at most 4000 bytes (documentation/files/files.md).
 * Records are ArrayBuffers: a 4-byte generation, then the value (so values of STATE_VALUE_MAX).
 *
 * The port promises that a power cut during `set` leaves the old value or the new one. A single
 * Preference.set does not: Moddable's ESP32 implementation erases the key before it writes the
 * new value (modules/files/preference/esp32/modPreference.c, a workaround for NVS keeping a
 * key's old type), so a cut between the two loses the record. So each record has two copies, in
 * domains "xs-ota.a" and "xs-ota.b", each value led by a 32-bit generation number; a read takes
 * the copy with the newer generation, and a set overwrites the other (older or missing) copy
 * with the next generation. Cut during the set: the copy being written is gone or old, and the
 * current one still answers. One Preference.set per record: NVS wear is one write per set.
 */
import Preference from "preference";
import type { StateStore } from "xs-ota/ports/state-store";
import { STATE_KEY_MAX, STATE_VALUE_MAX } from "xs-ota/ports/state-store";
import { OtaError } from "xs-ota/errors";

const COPIES = ["xs-ota.a", "xs-ota.b"] as const;
const KEY = /^[A-Za-z0-9_.-]+$/;

type Copy = 0 | 1;
interface Stored {
  copy: Copy;
  generation: number;
  value: Uint8Array;
}

export class Esp32StateStore implements StateStore {
  get(key: string): Uint8Array | undefined {
    return this.#copies(checkKey(key)).current?.value;
  }

  set(key: string, value: Uint8Array): void {
    checkKey(key);
    if (!(value instanceof Uint8Array)) throw new OtaError("bad-argument", `state value for '${key}' must be bytes`);
    if (value.length > STATE_VALUE_MAX) {
      throw new OtaError("bad-argument", `state value for '${key}' is ${value.length} bytes; the limit is ${STATE_VALUE_MAX}`);
    }
    const { current } = this.#copies(key);
    const target: Copy = current?.copy === 0 ? 1 : 0;
    const record = new Uint8Array(4 + value.length);
    new DataView(record.buffer).setUint32(0, current === undefined ? 1 : (current.generation + 1) >>> 0);
    record.set(value, 4);
    Preference.set(COPIES[target], key, record.buffer);
  }

  delete(key: string): void {
    const { current, older } = this.#copies(checkKey(key));
    // The older copy first: a cut in between leaves the current value, never an earlier one.
    if (older) Preference.delete(COPIES[older.copy], key);
    if (current) Preference.delete(COPIES[current.copy], key);
  }

  #copies(key: string): { current?: Stored; older?: Stored } {
    const found: Stored[] = [];
    for (const copy of [0, 1] as const) {
      const stored = Preference.get(COPIES[copy], key);
      if (stored === undefined) continue;
      if (!(stored instanceof ArrayBuffer) || stored.byteLength < 4) throw new OtaError("malformed", `state record '${key}' in ${COPIES[copy]} is not a record`);
      found.push({ copy, generation: new DataView(stored).getUint32(0), value: new Uint8Array(stored.slice(4)) });
    }
    if (found.length < 2) return { current: found[0] };
    const [a, b] = found;
    // Serial-number order (RFC 1982): a generation may wrap past 2^32.
    const aNewer = ((a.generation - b.generation) >>> 0) < 0x80000000;
    return aNewer ? { current: a, older: b } : { current: b, older: a };
  }
}

function checkKey(key: string): string {
  if (typeof key !== "string" || key.length === 0 || key.length > STATE_KEY_MAX || !KEY.test(key)) {
    throw new OtaError("bad-argument", `state key '${String(key)}' must be 1 to ${STATE_KEY_MAX} characters of A-Z a-z 0-9 _ . -`);
  }
  return key;
}
