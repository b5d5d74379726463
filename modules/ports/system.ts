/**
 * System: the running firmware and the machine under it.
 *
 * Contract:
 * - `restart()` resets the device; it does not return on a device (the simulator ends the
 *   running program and boots again through its bootloader).
 * - `version()` is the running image's version string (from its app descriptor).
 * - `freeMemory()` is bytes free in the JavaScript heap when the host can tell, else undefined.
 * - `log(level, message)` goes to the host's console or trace; it never throws.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

export interface System {
  restart(): void;
  version(): string;
  freeMemory(): number | undefined;
  log(level: LogLevel, message: string): void;
}
