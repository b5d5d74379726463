/**
 * The System port in the simulator. `restart()` asks the host to reset the chip: the host stops
 * this XS machine where it is (the call never returns, as esp_restart() does not), runs the
 * bootloader and starts a fresh machine on the slot it picks.
 */
import type { LogLevel, System } from "../../../modules/ports/system.ts";
import { call } from "./bridge.ts";

export class BridgedSystem implements System {
  readonly #version: string;

  /** The running image's version, as the host read it from the image at boot. */
  constructor(version: string) {
    this.#version = version;
  }

  restart(): void {
    call("system.restart");
    throw new Error("restart returned");
  }

  version(): string {
    return this.#version;
  }

  freeMemory(): number | undefined {
    return undefined;
  }

  log(level: LogLevel, message: string): void {
    try {
      call("system.log", { level, message });
    } catch {
      // log never throws
    }
  }
}
