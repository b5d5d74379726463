/**
 * Bundles TypeScript for the XS engine: rollup resolves modules (including @noble/*), esbuild
 * strips types and lowers what this XS build cannot run (class static fields that use their own
 * class throw "not initialized yet"). The result is one classic script.
 */
import { rollup, type Plugin } from "rollup";
import esbuild from "rollup-plugin-esbuild";
import { nodeResolve } from "@rollup/plugin-node-resolve";

const cache = new Map<string, Promise<string>>();

/** Bundles `entrySource` (a module's text; imports are absolute paths) into a script. */
export function bundleForXs(entrySource: string): Promise<string> {
  let found = cache.get(entrySource);
  if (!found) {
    found = build(entrySource);
    cache.set(entrySource, found);
  }
  return found;
}

async function build(entrySource: string): Promise<string> {
  const virtual: Plugin = {
    name: "xs-entry",
    resolveId: (id) => (id === "\0xs-entry" ? id : null),
    load: (id) => (id === "\0xs-entry" ? entrySource : null),
  };
  const bundle = await rollup({
    input: "\0xs-entry",
    plugins: [
      virtual,
      nodeResolve({ extensions: [".ts", ".js"] }),
      // exclude nothing: @noble/curves itself has `static BASE = new Point(...)`.
      esbuild({ target: "es2022", supported: { "class-static-field": false }, loaders: { ".ts": "ts" }, exclude: [] }),
    ],
    onwarn: (w, warn) => (w.code === "CIRCULAR_DEPENDENCY" ? undefined : warn(w)),
  });
  const { output } = await bundle.generate({ format: "iife", name: "__xsEntry" });
  await bundle.close();
  return output[0].code;
}
