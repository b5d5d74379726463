/**
 * The demo firmware: an app that starts the update agent and has a self-test. Built into images
 * by `xs-ota demo` (and usable as a template for your own): `self-test-passes.ts` and
 * `self-test-fails.ts` are its two entries, the second standing for a release with a bug.
 */
import { simBoard, startSimAgent } from "xs-ota/sim/host";

export function runDemoApp(selfTest: () => boolean): void {
  const { ports } = simBoard();
  ports.system.log("info", `app ${ports.system.version()} running on ${ports.partitions.running()}`);
  startSimAgent({
    selfTest: () => {
      const ok = selfTest();
      ports.system.log(ok ? "info" : "error", `self-test ${ok ? "passed" : "failed"}`);
      return ok;
    },
  });
}

/** What a real app would check after an update: its storage works and time moves. */
export function storageAndClockRespond(): boolean {
  const { ports } = simBoard();
  const probe = new Uint8Array([0x5a, 0xa5]);
  ports.store.set("selftest", probe);
  const back = ports.store.get("selftest");
  ports.store.delete("selftest");
  const t = ports.clock.now();
  return back !== undefined && back[0] === 0x5a && back[1] === 0xa5 && ports.clock.now() >= t;
}
