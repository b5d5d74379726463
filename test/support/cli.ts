/** Runs an xs-ota command in-process, capturing what it prints. */
import { main, type Io } from "../../cli/main.ts";

export interface CliLines {
  code: number;
  out: string[];
  err: string[];
}

export async function runCliLines(args: string[]): Promise<CliLines> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l) };
  const code = await main(args, io);
  return { code, out, err };
}

/** The same, with each stream's lines joined by newlines. */
export async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await runCliLines(args);
  return { code: r.code, out: r.out.join("\n"), err: r.err.join("\n") };
}
