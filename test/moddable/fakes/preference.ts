/**
 * Stand-in for Moddable's "preference" on ESP32 (modules/files/preference/esp32), kept by the
 * runner so it survives restarts, with NVS's limits and Moddable's errors: domains and keys of
 * at most 15 characters ("nvs_open fail" / "nvs set fail"), strings and buffers of at most 4000
 * bytes ("nvs set fail"), values only booleans, integers, strings and ArrayBuffers ("float
 * unsupported", "unsupported type"). A missing key or domain reads as undefined.
 */
import { call } from "../../../hosts/sim/xs/bridge.ts";
import { utf8Decode, utf8Encode } from "../../../modules/codec/utf8.ts";

const NAME_MAX = 15;
const VALUE_MAX = 4000;

type Stored = { type: "boolean"; value: boolean } | { type: "integer"; value: number } | { type: "string" } | { type: "buffer" };

function name(text: string, error: string): string {
  const s = String(text);
  if (s.length === 0 || s.length > NAME_MAX) throw new Error(error);
  return s;
}

const Preference = {
  set(domain: string, key: string, value: string | boolean | number | ArrayBuffer): void {
    name(domain, "nvs_open fail");
    name(key, "nvs set fail");
    let stored: Stored;
    let bytes: Uint8Array | undefined;
    if (typeof value === "boolean") stored = { type: "boolean", value };
    else if (typeof value === "number") {
      if (!Number.isInteger(value)) throw new Error("float unsupported");
      stored = { type: "integer", value: value | 0 };
    } else if (typeof value === "string") {
      bytes = utf8Encode(value);
      if (bytes.length + 1 > VALUE_MAX) throw new Error("nvs set fail");
      stored = { type: "string" };
    } else if (value instanceof ArrayBuffer) {
      if (value.byteLength > VALUE_MAX) throw new Error("nvs set fail");
      bytes = new Uint8Array(value);
      stored = { type: "buffer" };
    } else throw new Error("unsupported type");
    call("pref.set", { domain, key, stored }, bytes);
  },
  get(domain: string, key: string): string | boolean | number | ArrayBuffer | undefined {
    if (String(domain).length > NAME_MAX) return undefined; // nvs_open fails: treated as no domain
    name(key, "nvs get fail");
    const { json, bytes } = call("pref.get", { domain, key });
    const stored = json.stored as Stored | undefined;
    if (!stored) return undefined;
    if (stored.type === "boolean" || stored.type === "integer") return stored.value;
    if (stored.type === "string") return utf8Decode(bytes);
    return bytes.slice().buffer;
  },
  delete(domain: string, key: string): void {
    if (String(domain).length > NAME_MAX) return;
    name(key, "nvs erase fail");
    call("pref.delete", { domain, key });
  },
  keys(domain: string): string[] {
    return call("pref.keys", { domain }).json.keys as string[];
  },
};

export default Preference;
