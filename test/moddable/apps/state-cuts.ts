/**
 * Runs inside XS: cuts power at every NVS operation of a StateStore `set`, then reads the record
 * back as the next boot would, for the esp32 host's Esp32StateStore and, as a control, for a
 * store that writes Preference directly. `__stateCuts()` answers JSON: per store, the cut points
 * tried and those after which the record was neither the old value nor the new one; and whether
 * a value of the port's largest size fits NVS with the store's generation.
 */
import Preference from "preference";
import { Esp32StateStore } from "../../../hosts/esp32/state-store.ts";
import { STATE_VALUE_MAX, type StateStore } from "../../../modules/ports/state-store.ts";

interface Nvs {
  cutAt(n: number): void;
  powerOn(): void;
}

const nvs = (globalThis as unknown as { __nvs: Nvs }).__nvs;

/** Preference used as one would without knowing it erases first. */
class DirectStore implements StateStore {
  get(key: string): Uint8Array | undefined {
    const v = Preference.get("direct", key);
    return v instanceof ArrayBuffer ? new Uint8Array(v) : undefined;
  }
  set(key: string, value: Uint8Array): void {
    Preference.set("direct", key, value.slice().buffer);
  }
  delete(key: string): void {
    Preference.delete("direct", key);
  }
}

function sweep(make: () => StateStore): { points: number; lost: number[] } {
  const lost: number[] = [];
  let points = 0;
  for (let n = 1; ; n++) {
    const key = `k${n}`;
    const store = make();
    store.set(key, Uint8Array.of(1));
    store.set(key, Uint8Array.of(2));
    nvs.cutAt(n);
    let completed = true;
    try {
      store.set(key, Uint8Array.of(3));
    } catch {
      completed = false;
    }
    nvs.powerOn();
    if (completed) break;
    points++;
    const after = make().get(key)?.[0];
    if (after !== 2 && after !== 3) lost.push(n);
  }
  return { points, lost };
}

(globalThis as Record<string, unknown>).__stateCuts = (): ArrayBuffer => {
  const largest = new Esp32StateStore();
  largest.set("largest", new Uint8Array(STATE_VALUE_MAX).fill(7));
  const back = new Esp32StateStore().get("largest");
  const result = { esp32: sweep(() => new Esp32StateStore()), direct: sweep(() => new DirectStore()), largest: back?.length === STATE_VALUE_MAX && back[STATE_VALUE_MAX - 1] === 7 };
  const json = JSON.stringify(result);
  const out = new Uint8Array(json.length);
  for (let i = 0; i < json.length; i++) out[i] = json.charCodeAt(i);
  return out.buffer;
};
