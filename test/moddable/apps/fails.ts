/** Test firmware entry: a release with a bug: its sensor never answers, so its self-test fails. */
import { runTestApp } from "./app.ts";

runTestApp((ports) => {
  ports.system.log("error", "sensor on I2C 0x44 does not answer");
  return false;
});
