/**
 * modules/ is device code: it must import nothing but its own files and @noble/*, and use no
 * host globals, so that it bundles for XS and runs on any host. Type checks run here too.
 */
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Source without comments and string contents, so rules see only code. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "").replace(/(["'`])(?:\\.|(?!\1)[^\\])*\1/g, '""');
}

export function violations(file: string, text: string): string[] {
  const found: string[] = [];
  const modulesDir = join(root, "modules");
  for (const m of text.matchAll(/(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']/g)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec.startsWith("@noble/")) continue;
    if (spec.startsWith(".")) {
      const target = resolve(file, "..", spec);
      if (!target.startsWith(modulesDir + "/")) found.push(`${spec} leaves modules/`);
      continue;
    }
    found.push(`imports '${spec}'`);
  }
  for (const g of ["process", "Buffer", "require", "console", "setTimeout", "setInterval", "__dirname", "globalThis.process"]) {
    if (new RegExp(`(?<![\\w.$])${g.replace(".", "\\.")}(?![\\w$])`).test(code(text))) found.push(`uses host global '${g}'`);
  }
  return found.map((v) => `${relative(root, file)}: ${v}`);
}

describe("modules/ portability", () => {
  it("imports only modules/ files and @noble/*, and uses no host globals", () => {
    const all = sources(join(root, "modules")).flatMap((f) => violations(f, readFileSync(f, "utf8")));
    expect(all).toEqual([]);
  });

  it("the rule catches what it must", () => {
    const f = join(root, "modules/storage/x.ts");
    expect(violations(f, `import { readFileSync } from "node:fs";`)).toHaveLength(1);
    expect(violations(f, `import Flash from "embedded:storage/flash";`)).toHaveLength(1);
    expect(violations(f, `import x from "../../hosts/sim/nor-flash.ts";`)).toHaveLength(1);
    expect(violations(f, `import mqtt from "mqtt";`)).toHaveLength(1);
    expect(violations(f, `const b = Buffer.from("x");`)).toHaveLength(1);
    expect(violations(f, `setTimeout(() => {}, 1);`)).toHaveLength(1);
    expect(violations(f, `import { sha256 } from "@noble/hashes/sha2.js";\nimport { OtaError } from "../errors.ts"; // setTimeout`)).toEqual([]);
  });
});

function tsc(project: string): string {
  try {
    execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", join(root, project)], { encoding: "utf8" });
    return "";
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? e);
  }
}

describe("type checks", () => {
  it("the whole repo type-checks (strict)", () => {
    expect(tsc("tsconfig.json")).toBe("");
  }, 120_000);

  it("modules/ type-checks with no Node or DOM types", () => {
    expect(tsc("tsconfig.modules.json")).toBe("");
  }, 120_000);
});
