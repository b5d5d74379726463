/** Demo firmware entry: a release with a bug: its sensor never answers, so its self-test fails. */
import { simBoard } from "xs-ota/sim/host";
import { runDemoApp } from "./demo.ts";

runDemoApp(() => {
  simBoard().ports.system.log("error", "sensor on I2C 0x44 does not answer");
  return false;
});
