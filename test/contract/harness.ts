/**
 * A contract suite is a list of named cases written once and run on every engine: vitest runs
 * them on Node, and test/xs runs the same bundle on the real XS engine. So this file and the
 * suites use nothing but the language: no vitest, no node:*, no console.
 */
export interface Case {
  name: string;
  run: () => void | Promise<void>;
}

export interface Suite {
  name: string;
  cases: Case[];
}

export function suite(name: string, define: (test: (name: string, run: Case["run"]) => void) => void): Suite {
  const cases: Case[] = [];
  define((caseName, run) => {
    if (cases.some((c) => c.name === caseName)) throw new Error(`duplicate case '${caseName}' in ${name}`);
    cases.push({ name: caseName, run });
  });
  return { name, cases };
}
