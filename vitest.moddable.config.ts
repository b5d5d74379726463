import { defineConfig } from "vitest/config";

// npm run test:moddable (test/moddable/main.ts): only the cases registered for Moddable's XS,
// the [moddable] runs of the contract suites and of the esp32 host's whole update.
export default defineConfig({
  test: {
    include: ["test/*.test.ts"],
    testNamePattern: /\[moddable\]/,
    reporters: ["default", ["./test/summary-reporter.ts", { countSkipped: false }]],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
