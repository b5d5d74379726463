/** Demo firmware entry: a release whose self-test passes. */
import { runDemoApp, storageAndClockRespond } from "./demo.ts";

runDemoApp(storageAndClockRespond);
