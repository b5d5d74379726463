#!/usr/bin/env node
// The xs-ota command. Its sources are TypeScript; tsx compiles them as they load.
import { register } from "tsx/esm/api";
register();
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
