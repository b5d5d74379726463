/**
 * The Clock port in the simulator: time is the engine's monotonic clock; timers are the host's
 * (Node timers), which come back as events, so a due timer runs when XS is idle, as on Moddable.
 */
import type { Clock, TimerId } from "../../../modules/ports/clock.ts";
import { call, onEvent } from "./bridge.ts";
import { nativeLayer } from "./native.ts";

export class BridgedClock implements Clock {
  readonly #callbacks = new Map<number, () => void>();
  #next = 1;

  constructor() {
    onEvent("timer", (event) => {
      const id = event.id as number;
      const callback = this.#callbacks.get(id);
      this.#callbacks.delete(id);
      callback?.();
    });
  }

  now(): number {
    return nativeLayer().now();
  }

  wallTime(): number | undefined {
    return Date.now();
  }

  setTimer(ms: number, callback: () => void): TimerId {
    const id = this.#next++;
    this.#callbacks.set(id, callback);
    call("timer.set", { id, ms: Math.max(0, ms) });
    return id;
  }

  clearTimer(id: TimerId): void {
    if (!this.#callbacks.delete(id)) return;
    call("timer.clear", { id });
  }
}
