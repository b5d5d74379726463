/**
 * The StateStore port over Moddable's Preference, which ESP32 keeps in ESP-IDF's NVS: keys and
 * domains of at most 15 characters, values of at most 4000 bytes (documentation/files/files.md).
 * Records are ArrayBuffers.
 *
 * The port promises that a power cut during `set` leaves the old value or the new one. A single
 * Preference.set does not: Moddable's ESP32 implementation erases the key before it writes the
 * new value (modules/files/preference/esp32/modPreference.c, a workaround for NVS keeping a
 * key's old type), so a cut between the two loses the record. So each record has two copies, in
 * domains "xs-ota.a" and "xs-ota.b", and a third domain "xs-ota.p" says which copy is current.
 * A set writes the other copy, then the pointer. Cut during the copy: the pointer still names
 * the old one. Cut during the pointer: the pointer is gone, and a read takes copy A if it
 * exists, else B; both hold the old or the new value at that moment, so either answer is right.
 */
import Preference from "preference";
import type { StateStore } from "xs-ota/ports/state-store";
import { STATE_KEY_MAX, STATE_VALUE_MAX } from "xs-ota/ports/state-store";
import { OtaError } from "xs-ota/errors";
import { copyBuffer } from "./buffers.ts";

const COPIES = ["xs-ota.a", "xs-ota.b"] as const;
const POINTER = "xs-ota.p";
const KEY = /^[A-Za-z0-9_.-]+$/;

type Copy = 0 | 1;

export class Esp32StateStore implements StateStore {
  get(key: string): Uint8Array | undefined {
    return this.#current(checkKey(key))?.value;
  }

  set(key: string, value: Uint8Array): void {
    checkKey(key);
    if (!(value instanceof Uint8Array)) throw new OtaError("bad-argument", `state value for '${key}' must be bytes`);
    if (value.length > STATE_VALUE_MAX) {
      throw new OtaError("bad-argument", `state value for '${key}' is ${value.length} bytes; the limit is ${STATE_VALUE_MAX}`);
    }
    const target: Copy = this.#current(key)?.copy === 0 ? 1 : 0;
    Preference.set(COPIES[target], key, copyBuffer(value));
    Preference.set(POINTER, key, target);
  }

  delete(key: string): void {
    const current = this.#current(checkKey(key))?.copy ?? 0;
    Preference.delete(COPIES[current === 0 ? 1 : 0], key);
    Preference.delete(COPIES[current], key);
    Preference.delete(POINTER, key);
  }

  #current(key: string): { copy: Copy; value: Uint8Array } | undefined {
    const order: Copy[] = Preference.get(POINTER, key) === 1 ? [1, 0] : [0, 1];
    for (const copy of order) {
      const stored = Preference.get(COPIES[copy], key);
      if (stored === undefined) continue;
      if (!(stored instanceof ArrayBuffer)) throw new OtaError("malformed", `state record '${key}' in ${COPIES[copy]} is not bytes`);
      return { copy, value: new Uint8Array(stored.slice(0)) };
    }
    return undefined;
  }
}

function checkKey(key: string): string {
  if (typeof key !== "string" || key.length === 0 || key.length > STATE_KEY_MAX || !KEY.test(key)) {
    throw new OtaError("bad-argument", `state key '${String(key)}' must be 1 to ${STATE_KEY_MAX} characters of A-Z a-z 0-9 _ . -`);
  }
  return key;
}
