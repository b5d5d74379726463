/**
 * The simulator's StateStore, with the limits of Moddable's Preference on ESP32 (NVS): keys of
 * at most 15 characters, values of at most STATE_VALUE_MAX bytes (NVS's 4000 less the esp32
 * store's generation). Values are copied in and out, and a set
 * replaces the whole value at once, as NVS does. `onChange` lets a host persist the records.
 * No platform imports: it also runs on XS.
 */
import type { StateStore } from "../../modules/ports/state-store.ts";
import { STATE_KEY_MAX, STATE_VALUE_MAX } from "../../modules/ports/state-store.ts";
import { OtaError } from "../../modules/errors.ts";

const KEY = /^[A-Za-z0-9_.-]+$/;

export class MemoryStateStore implements StateStore {
  readonly #records = new Map<string, Uint8Array>();
  readonly #onChange: ((records: ReadonlyMap<string, Uint8Array>) => void) | undefined;
  #writes = 0;

  constructor(initial?: Iterable<[string, Uint8Array]>, onChange?: (records: ReadonlyMap<string, Uint8Array>) => void) {
    for (const [k, v] of initial ?? []) this.#records.set(checkKey(k), checkValue(k, v).slice());
    this.#onChange = onChange;
  }

  get(key: string): Uint8Array | undefined {
    const v = this.#records.get(checkKey(key));
    return v?.slice();
  }

  /** Records written so far (each set is an NVS write on a device: the figure for wear). */
  get writes(): number {
    return this.#writes;
  }

  set(key: string, value: Uint8Array): void {
    this.#records.set(checkKey(key), checkValue(key, value).slice());
    this.#writes++;
    this.#onChange?.(this.#records);
  }

  delete(key: string): void {
    if (this.#records.delete(checkKey(key))) this.#onChange?.(this.#records);
  }
}

function checkKey(key: string): string {
  if (typeof key !== "string" || key.length === 0 || key.length > STATE_KEY_MAX || !KEY.test(key)) {
    throw new OtaError("bad-argument", `state key '${String(key)}' must be 1 to ${STATE_KEY_MAX} characters of A-Z a-z 0-9 _ . -`);
  }
  return key;
}

function checkValue(key: string, value: Uint8Array): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new OtaError("bad-argument", `state value for '${key}' must be bytes`);
  if (value.length > STATE_VALUE_MAX) {
    throw new OtaError("bad-argument", `state value for '${key}' is ${value.length} bytes; the limit is ${STATE_VALUE_MAX}`);
  }
  return value;
}
