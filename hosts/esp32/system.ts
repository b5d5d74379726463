/**
 * The System port on the device. `restart()` is ECMA-419's `System.restart()` (Moddable's
 * modules/io/system: esp_restart(), and it never returns). The version is read from the running
 * image's app descriptor, as the simulator does, so it is the one the bootloader and the agent's
 * version checks see (on ESP32 it comes from CONFIG_APP_PROJECT_VER). Logs go to `trace`, which
 * xsbug and the serial console show.
 */
import type { LogLevel, System } from "xs-ota/ports/system";
import type { Partitions } from "xs-ota/ports/partitions";
import { imageVersion } from "xs-ota/esp-idf/image";

export class Esp32System implements System {
  readonly #version: string;

  constructor(partitions: Partitions) {
    this.#version = imageVersion(partitions.open(partitions.running()));
  }

  restart(): void {
    System.restart();
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
      trace(`xs-ota ${level}: ${message}\n`);
    } catch {
      // log never throws
    }
  }
}
