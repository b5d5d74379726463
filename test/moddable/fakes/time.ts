/** Stand-in for Moddable's "time": `ticks` in whole milliseconds, `delta` between two of them. */
import { nativeLayer } from "../../../hosts/sim/xs/native.ts";

interface TimeModule {
  readonly ticks: number;
  delta(start: number, end?: number): number;
  set(seconds: number): void;
  timezone: number;
  dst: number;
}

const Time: TimeModule = {
  get ticks(): number {
    return Math.floor(nativeLayer().now());
  },
  delta(start: number, end: number = Time.ticks): number {
    return end - start;
  },
  set(_seconds: number): void {
    throw new Error("Time.set is not simulated");
  },
  timezone: 0,
  dst: 0,
};

export default Time;
