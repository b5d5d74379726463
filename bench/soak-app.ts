/**
 * The soak's firmware: the demo app with a self-test that takes a while (a real one checks
 * sensors and the network), so that a kill can land inside it. It logs when the test starts, so
 * the soak can tell the self-test phase from the trial boot before it.
 */
import { simBoard, startSimAgent } from "xs-ota/sim/host";
import { storageAndClockRespond } from "../hosts/sim/apps/demo.ts";

const SELF_TEST_MS = 800;

const { ports } = simBoard();
ports.system.log("info", `app ${ports.system.version()} running on ${ports.partitions.running()}`);
startSimAgent({
  selfTest: () =>
    new Promise<boolean>((resolve) => {
      ports.system.log("info", "self-test running");
      ports.clock.setTimer(SELF_TEST_MS, () => {
        const ok = storageAndClockRespond();
        ports.system.log(ok ? "info" : "error", `self-test ${ok ? "passed" : "failed"}`);
        resolve(ok);
      });
    }),
});
