/**
 * StateStore: small durable records (the job in progress, download progress, the minimum
 * security version) that survive restarts and power loss. On ESP32 it is Moddable's
 * `Preference` in NVS, so its limits are NVS's, and every host enforces them:
 *
 * Contract:
 * - Keys are 1..15 characters of [A-Za-z0-9_.-]; values are byte strings of at most 3996 bytes
 *   (NVS takes 4000; the esp32 host leads each record with a 4-byte generation).
 *   Anything else: OtaError "bad-argument" (nothing is stored).
 * - `set(key, value)` replaces the whole value atomically: after a power loss a read returns the
 *   old value or the new one, never a mix.
 * - `get` of a missing key returns undefined; `delete` of a missing key does nothing.
 */
export interface StateStore {
  get(key: string): Uint8Array | undefined;
  set(key: string, value: Uint8Array): void;
  delete(key: string): void;
}

export const STATE_KEY_MAX = 15;
export const STATE_VALUE_MAX = 3996;
