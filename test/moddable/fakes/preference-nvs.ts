/**
 * Stand-in for Moddable's "preference" on ESP32 kept inside XS, with the one behaviour that
 * matters for power loss: Moddable's set erases the key, then writes the new value
 * (modules/files/preference/esp32/modPreference.c), two NVS operations; a delete is one. A cut
 * armed with `__nvs.cutAt(n)` makes the n-th operation from then fail before it lands, and every
 * later one too, until `__nvs.powerOn()`. Limits as in ./preference.ts.
 */
type Value = string | boolean | number | ArrayBuffer;

const records = new Map<string, Value>();
let operations = 0;
let cut: number | undefined;
let dead = false;

function step(apply: () => void): void {
  if (dead) throw new Error("nvs: no power");
  operations++;
  if (operations === cut) {
    dead = true;
    throw new Error("nvs: power cut");
  }
  apply();
}

function name(text: string, error: string): string {
  if (String(text).length === 0 || String(text).length > 15) throw new Error(error);
  return `${text}`;
}

(globalThis as Record<string, unknown>).__nvs = {
  cutAt(n: number) {
    cut = operations + n;
  },
  powerOn() {
    dead = false;
    cut = undefined;
  },
};

export default {
  set(domain: string, key: string, value: Value): void {
    const id = `${name(domain, "nvs_open fail")}\u0000${name(key, "nvs set fail")}`;
    if (value instanceof ArrayBuffer ? value.byteLength > 4000 : typeof value === "string" && value.length >= 4000) throw new Error("nvs set fail");
    step(() => records.delete(id));
    step(() => records.set(id, value instanceof ArrayBuffer ? value.slice(0) : value));
  },
  get(domain: string, key: string): Value | undefined {
    if (dead) throw new Error("nvs: no power");
    const value = records.get(`${domain}\u0000${key}`);
    return value instanceof ArrayBuffer ? value.slice(0) : value;
  },
  delete(domain: string, key: string): void {
    step(() => records.delete(`${domain}\u0000${key}`));
  },
  keys(domain: string): string[] {
    return [...records.keys()].filter((k) => k.startsWith(`${domain}\u0000`)).map((k) => k.slice(domain.length + 1));
  },
};
