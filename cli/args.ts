/**
 * The one command-line layer every xs-ota command uses (node:util parseArgs underneath), so that
 * all of them behave alike: `--help`/`-h` prints the command's usage and options on stdout (exit
 * 0); a usage error (unknown option, missing value, missing required option, bad value, wrong
 * number of arguments) prints `xs-ota <command>: <reason>` and the usage on stderr (exit 2).
 * A command declares its options once (CommandSpec); the help text is made from that declaration.
 */
import { parseArgs } from "node:util";
import type { Io } from "./main.ts";

export interface OptionSpec {
  type: "string" | "boolean";
  /** May be given more than once (values kept in order). */
  multiple?: boolean;
  /** One letter: `-o` for `--out`. */
  short?: string;
  /** What the value is called in the help: `--file FW.bin`. */
  value?: string;
  /** Accepted values; anything else is a usage error naming them. */
  choices?: readonly string[];
  required?: boolean;
  description: string;
}

export interface CommandSpec {
  /** As typed after `xs-ota`: "job create". */
  name: string;
  /** Usage lines, each without "usage: xs-ota " (the first one is the command's synopsis). */
  usage: readonly string[];
  /** Lines printed by --help after the usage: what the command does. */
  about?: readonly string[];
  options: Record<string, OptionSpec>;
  /** How many positional arguments, and what they are called in messages. */
  positionals?: { min: number; max: number; name: string };
}

/** Thrown (or returned by `Args.fail`) for a usage error; `withArgs` prints it and returns 2. */
export class UsageError extends Error {}

export class Args {
  constructor(
    readonly spec: CommandSpec,
    readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>,
    readonly positionals: readonly string[],
  ) {}

  string(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === "string" ? v : undefined;
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /** The string options given, renamed to the request fields they fill (option -> field). */
  fields(names: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [option, field] of Object.entries(names)) {
      const v = this.string(option);
      if (v !== undefined) out[field] = v;
    }
    return out;
  }

  list(name: string): string[] {
    const v = this.values[name];
    return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
  }

  /** A usage error for a value the declaration cannot check (a range, a combination). */
  fail(reason: string): never {
    throw new UsageError(reason);
  }
}

const HELP: OptionSpec = { type: "boolean", short: "h", description: "print this help" };

export function usageLines(spec: CommandSpec): string[] {
  return spec.usage.map((line, i) => `${i === 0 ? "usage:" : "      "} xs-ota ${line}`);
}

/** Usage, what the command does, and each option with its description. */
export function helpText(spec: CommandSpec): string[] {
  const lines = usageLines(spec);
  if (spec.about?.length) lines.push("", ...spec.about);
  const rows = Object.entries({ ...spec.options, help: HELP }).map(([name, o]) => {
    const left = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`;
    const extra = [o.choices ? `one of ${o.choices.join(", ")}` : "", o.required ? "required" : "", o.multiple ? "repeatable" : ""].filter((s) => s);
    return [left, `${o.description}${extra.length ? ` (${extra.join("; ")})` : ""}`] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  lines.push("", "options:", ...rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`));
  return lines;
}

export function printUsageError(spec: CommandSpec, io: Io, reason: string): number {
  io.err(`xs-ota ${spec.name}: ${reason}`);
  for (const line of usageLines(spec)) io.err(line);
  return 2;
}

/** `--help` anywhere before a `--`; checked before anything else, so `--help` always works. */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}

/** parseArgs's messages are long and name its own API; this says what went wrong in one phrase. */
function reasonFor(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown }).code;
  const option = /'(-[^' ]+)/.exec(message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option '${option ?? message}'`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") return option ? `${option} needs a value` : message;
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") return `unexpected argument ${/'([^']*)'/.exec(message)?.[0] ?? ""}`.trim();
  return message;
}

/** Parses `args` by `spec`; throws UsageError. */
export function parseCommand(spec: CommandSpec, args: readonly string[]): Args {
  const options: Record<string, { type: "string" | "boolean"; multiple: true; short?: string }> = {};
  for (const [name, o] of Object.entries(spec.options)) options[name] = { type: o.type, multiple: true, ...(o.short ? { short: o.short } : {}) };
  let parsed;
  try {
    // Every option is taken as `multiple` so that one given twice is seen and refused here.
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(reasonFor(e));
  }
  const values: Record<string, string | boolean | string[] | undefined> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    const given = (parsed.values as Record<string, (string | boolean)[] | undefined>)[name];
    if (given === undefined || given.length === 0) {
      if (o.required) throw new UsageError(`--${name} is required`);
      continue;
    }
    if (!o.multiple && given.length > 1) throw new UsageError(`--${name} given twice`);
    if (o.type === "boolean") {
      values[name] = true;
      continue;
    }
    const strings = given.filter((v): v is string => typeof v === "string");
    for (const v of strings) {
      if (o.choices && !o.choices.includes(v)) throw new UsageError(`--${name} takes ${o.choices.join(", ")}, got ${v}`);
    }
    values[name] = o.multiple ? strings : strings[0];
  }
  const p = spec.positionals ?? { min: 0, max: 0, name: "argument" };
  const positionals = parsed.positionals;
  if (positionals.length > p.max) throw new UsageError(`unexpected argument '${positionals[p.max] ?? ""}'`);
  if (positionals.length < p.min) throw new UsageError(`missing ${p.name}`);
  return new Args(spec, values, positionals);
}

/**
 * Runs a command body with its parsed arguments: --help prints the help (0); a UsageError,
 * from parsing or from the body's own checks (`a.fail`), prints the reason and usage (2).
 */
export async function withArgs(spec: CommandSpec, args: readonly string[], io: Io, body: (a: Args) => Promise<number> | number): Promise<number> {
  if (wantsHelp(args)) {
    for (const line of helpText(spec)) io.out(line);
    return 0;
  }
  try {
    return await body(parseCommand(spec, args));
  } catch (e) {
    if (e instanceof UsageError) return printUsageError(spec, io, e.message);
    throw e;
  }
}

/** The same for code that must stay synchronous. */
export function withArgsSync(spec: CommandSpec, args: readonly string[], io: Io, body: (a: Args) => number): number {
  if (wantsHelp(args)) {
    for (const line of helpText(spec)) io.out(line);
    return 0;
  }
  try {
    return body(parseCommand(spec, args));
  } catch (e) {
    if (e instanceof UsageError) return printUsageError(spec, io, e.message);
    throw e;
  }
}

/** A command made of subcommands (`job parse|create|...`): picks one, or prints them all. */
export interface Group {
  name: string;
  subcommands: Record<string, { spec: CommandSpec; run: (args: string[], io: Io) => Promise<number> | number }>;
}

export function groupUsage(group: Group): string[] {
  return Object.values(group.subcommands).flatMap((s, i) => s.spec.usage.map((l, j) => `${i === 0 && j === 0 ? "usage:" : "      "} xs-ota ${l}`));
}

export function runGroup(group: Group, args: string[], io: Io): Promise<number> | number {
  const [sub, ...rest] = args;
  const entry = sub === undefined ? undefined : Object.hasOwn(group.subcommands, sub) ? group.subcommands[sub] : undefined;
  if (entry) return entry.run(rest, io);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    for (const line of groupUsage(group)) io.out(line);
    io.out("");
    io.out(`xs-ota ${group.name} <subcommand> --help tells more`);
    return 0;
  }
  io.err(`xs-ota ${group.name}: ${sub === undefined ? "give a subcommand" : `unknown subcommand '${sub}'`} (${Object.keys(group.subcommands).join(", ")})`);
  for (const line of groupUsage(group)) io.err(line);
  return 2;
}
