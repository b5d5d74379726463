/**
 * xs-ota partitions check FILE [--flash-size SIZE]
 *
 * Prints the table a CSV describes and everything wrong with it, as FILE:LINE: message (line 0 is
 * the table as a whole). Exit codes: 0 ok, 1 errors in the table or an unreadable file, 2 usage.
 */
import { readTextInput } from "./files.ts";
import type { Io } from "./main.ts";
import { runGroup, withArgsSync, type Args, type CommandSpec, type Group } from "./args.ts";
import {
  checkPartitionTable,
  hex,
  parseFlashSize,
  parsePartitionCsv,
  subtypeName,
  typeName,
  type Partition,
  type TableError,
} from "../modules/esp-idf/partition-table.ts";

export const PARTITIONS_CHECK: CommandSpec = {
  name: "partitions check",
  usage: ["partitions check FILE [--flash-size SIZE]   (SIZE: 2MB, 4MB, 8MB, 16MB, ...)"],
  about: ["Prints the partition table a CSV describes and everything wrong with it, as FILE:LINE: message."],
  options: { "flash-size": { type: "string", value: "SIZE", description: "the flash size to check against (default: the table's own, if it says)" } },
  positionals: { min: 1, max: 1, name: "FILE" },
};

const GROUP: Group = { name: "partitions", subcommands: { check: { spec: PARTITIONS_CHECK, run: (args, io) => withArgsSync(PARTITIONS_CHECK, args, io, (a) => check(a, io)) } } };

export function partitionsCommand(args: string[], io: Io): number | Promise<number> {
  return runGroup(GROUP, args, io);
}

function check(a: Args, io: Io): number {
  const file = a.positionals[0] ?? "";
  const flashSizeText = a.string("flash-size");
  let flashOverride: number | undefined;
  if (flashSizeText !== undefined) {
    flashOverride = parseFlashSize(flashSizeText);
    if (flashOverride === undefined) a.fail(`'${flashSizeText}' is not a flash size`);
  }

  const text = readTextInput(file, "the partition table");

  const table = parsePartitionCsv(text);
  const flashSize = flashOverride ?? table.flashSize;
  // A check of a half-parsed table mostly reports the rows that failed to parse a second time.
  const errors: TableError[] =
    table.errors.length > 0 ? table.errors : checkPartitionTable(table.partitions, { flashSize, layout: table.layout, staging: table.staging });

  io.out(`${file}: layout ${table.layout}, flash ${flashSize === undefined ? "size not given" : `${human(flashSize)} (${hex(flashSize)})`}`);
  if (table.partitions.length > 0) for (const row of formatTable(table.partitions)) io.out(row);

  if (errors.length === 0) {
    io.out("ok");
    return 0;
  }
  for (const e of errors) io.err(`${file}:${e.line}: ${e.message}`);
  io.err(`${errors.length} error${errors.length === 1 ? "" : "s"}`);
  return 1;
}

function formatTable(partitions: readonly Partition[]): string[] {
  const rows = [["name", "type", "subtype", "offset", "size", "", "flags"]];
  for (const p of partitions) {
    const flags = [p.encrypted ? "encrypted" : "", p.readonly ? "readonly" : ""].filter((f) => f).join(":");
    rows.push([p.name, typeName(p.type), subtypeName(p.type, p.subtype), hex(p.offset), hex(p.size), human(p.size), flags]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd());
}

/** 0x1E0000 -> "1920 KB", 0x400000 -> "4 MB": whole units only, the way tables are planned. */
function human(n: number): string {
  if (n >= 0x100000 && n % 0x100000 === 0) return `${n / 0x100000} MB`;
  if (n >= 0x400 && n % 0x400 === 0) return `${n / 0x400} KB`;
  return `${n} B`;
}
