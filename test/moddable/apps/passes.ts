/** Test firmware entry: a release whose self-test passes. */
import { runTestApp, storageAndClockRespond } from "./app.ts";

runTestApp(storageAndClockRespond);
