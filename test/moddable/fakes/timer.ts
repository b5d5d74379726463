/**
 * Stand-in for Moddable's "timer": Timer.set / repeat / schedule / clear, with callbacks run by
 * the event loop (the runner's timers come back as "timer" events through the bridge's pump),
 * never inside the call that set them. A callback receives its timer, as Moddable's do.
 */
import { call, onEvent } from "../../../hosts/sim/xs/bridge.ts";

type Callback = (timer: Timer) => void;

const live = new Map<number, Timer>();
let nextId = 1;

onEvent("timer", (event) => {
  const timer = live.get(event.id as number);
  if (!timer) return;
  if (timer.repeat === undefined) live.delete(timer.id);
  else arm(timer, timer.repeat);
  timer.callback(timer);
});

function arm(timer: Timer, ms: number): void {
  live.set(timer.id, timer);
  call("timer.set", { id: timer.id, ms: Math.max(0, ms) });
}

class Timer {
  readonly id = nextId++;
  callback: Callback;
  repeat: number | undefined;

  private constructor(callback: Callback, repeat: number | undefined) {
    this.callback = callback;
    this.repeat = repeat;
  }

  static set(callback: Callback, interval = 0, repeat?: number): Timer {
    const timer = new Timer(callback, repeat);
    arm(timer, interval);
    return timer;
  }

  static repeat(callback: Callback, interval: number): Timer {
    return Timer.set(callback, interval, interval);
  }

  static schedule(timer: Timer, interval = 0, repeat?: number): void {
    timer.repeat = repeat;
    arm(timer, interval);
  }

  static clear(timer: Timer | undefined | null): void {
    if (!timer || !live.delete(timer.id)) return;
    call("timer.clear", { id: timer.id });
  }

  static delay(_ms: number): void {
    throw new Error("Timer.delay is not simulated");
  }
}

export default Timer;
