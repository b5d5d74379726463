/**
 * The simulator's native layer, XS side: the one global the device-faithful engine adds to what a
 * Moddable app has (hosts/sim/engine/xs-ota-device.c). Only the simulator's host and the test
 * harness reach it; modules/ never does, so what runs here runs on a device.
 */
export interface XsnapNative {
  /** A synchronous call to the process that runs the engine (the bridge's transport). */
  issueCommand(request: ArrayBuffer): ArrayBuffer;
  /** A line to the engine's standard output. */
  print(text: string): void;
  /** A full garbage collection (budgets measure the live heap after it). */
  gc(): void;
  /** Milliseconds, monotonic. */
  now(): number;
  /** Runs `callback` once the promise jobs queued so far have drained (a macrotask turn). */
  setImmediate(callback: () => void): void;
  /** Freezes the machine as Moddable's linker does after the preloaded modules ran. */
  preload(): void;
  /** UTF-8 in C, for the bridge's JSON frames only (absent on Moddable's own XS). */
  TextEncoder?: new () => { encode(text: string): Uint8Array };
  TextDecoder?: new () => { decode(bytes: Uint8Array): string };
}

export function nativeLayer(): XsnapNative {
  const found = (globalThis as { xsnap?: XsnapNative }).xsnap;
  if (!found) throw new Error("no xsnap native layer: this code runs on xs-ota's device-faithful XS engine only");
  return found;
}
