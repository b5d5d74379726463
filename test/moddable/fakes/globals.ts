/**
 * Runs inside XS, first in every test firmware: the globals a Moddable ESP32 app has and this
 * engine lacks. `trace` (xsbug/serial output) goes to the runner's log; `System` is the one
 * Moddable's modules/io/system installs, whose `restart()` is esp_restart(): here the runner
 * resets the board (bootloader, then a fresh machine) and the call never returns. `__sim.pump`
 * is how the runner runs the event loop when events (timers, MQTT) are due.
 */
import { call, pump } from "../../../hosts/sim/xs/bridge.ts";

const global = globalThis as Record<string, unknown>;

global.trace = (...parts: unknown[]) => {
  const text = parts.map(String).join("").replace(/\n$/, "");
  call("system.log", { level: "info", message: text });
};
global.System = {
  restart(): never {
    call("system.restart");
    throw new Error("restart returned");
  },
};
global.__sim = { pump };
