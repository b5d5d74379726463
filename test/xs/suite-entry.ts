/** The entry module of a contract suite for XS: the suite, the in-XS runner and the bridged environment. Node side. */
import { basename } from "node:path";
import { fileURLToPath } from "node:url";

/** The entry module that bundles a suite with the in-XS runner (and the bridged environment). */
export function suiteEntry(moduleUrl: URL, withEnv = false): string {
  const path = (relative: string) => JSON.stringify(fileURLToPath(new URL(relative, import.meta.url)));
  const lines = [
    `import suite from ${JSON.stringify(fileURLToPath(moduleUrl))};`,
    `import { expose } from ${path("./suite-runner.ts")};`,
    withEnv ? `import { setup } from ${path("./env-setup.ts")};\nglobalThis.__setup = setup;` : "",
    "expose(suite);",
  ];
  return lines.join("\n") + "\n";
}

/** The module key of a suite's bundle in the Moddable test program (test/moddable/program.ts). */
export function suiteModule(moduleUrl: URL): string {
  return `xs-ota-test/suite-${basename(fileURLToPath(moduleUrl)).replace(/\.contract\.ts$/, "")}`;
}
