import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    reporters: ["default", "./test/summary-reporter.ts"],
    // XS suites start a worker process each; two cores here.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
