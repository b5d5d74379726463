/**
 * The StateStore port over the simulator's bridge: the host keeps the records (NVS) on disk with
 * Preference's limits, so they survive reboots and power cuts of the simulated device.
 */
import type { StateStore } from "../../../modules/ports/state-store.ts";
import { call } from "./bridge.ts";

export class BridgedStateStore implements StateStore {
  get(key: string): Uint8Array | undefined {
    const { json, bytes } = call("state.get", { key });
    return json.found ? bytes.slice() : undefined;
  }

  set(key: string, value: Uint8Array): void {
    call("state.set", { key }, value);
  }

  delete(key: string): void {
    call("state.delete", { key });
  }
}
