/**
 * One `xs-ota cloud` or `xs-ota sim` child of the soak: started, read line by line, killed with
 * SIGKILL and started again with the same arguments (so the same --dir / --data and ports).
 * Each child leads its own process group, so a kill takes the simulator's xsnap-worker with it,
 * as a power cut takes the whole chip.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { WriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../bin/xs-ota.js", import.meta.url));

export class Child {
  readonly name: string;
  readonly #args: string[];
  readonly #ready: RegExp;
  readonly #log: WriteStream;
  readonly #listeners = new Set<(line: string) => void>();
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  starts = 0;

  constructor(name: string, args: string[], ready: RegExp, log: WriteStream) {
    this.name = name;
    this.#args = args;
    this.#ready = ready;
    this.#log = log;
  }

  get up(): boolean {
    return this.#child !== undefined;
  }

  /** Calls `fn` with every line the child prints (stdout and stderr); returns the unsubscribe. */
  onLine(fn: (line: string) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Starts the child (`extra` arguments this time only) and resolves once it printed its ready line. */
  async start(extra: string[] = []): Promise<void> {
    if (this.#child) return;
    this.starts++;
    const child = spawn(process.execPath, [CLI, ...this.#args, ...extra], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    void this.#exited.then(() => {
      if (this.#child === child) this.#child = undefined;
    });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} printed no ready line within 60 s`)), 60_000);
      const off = this.onLine((line) => {
        if (!this.#ready.test(line)) return;
        clearTimeout(timer);
        off();
        resolve();
      });
      void this.#exited.then(() => {
        clearTimeout(timer);
        off();
        reject(new Error(`${this.name} exited before it was ready (code ${child.exitCode ?? child.signalCode})`));
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        this.#log.write(`${new Date().toISOString()} ${this.name}[${this.starts}] ${line}\n`);
        for (const fn of [...this.#listeners]) fn(line);
      });
    }
    await ready;
  }

  /** SIGKILL to the whole process group; resolves once the child is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child?.pid) return;
    this.#log.write(`${new Date().toISOString()} ${this.name}[${this.starts}] ** SIGKILL **\n`);
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await this.#exited;
    this.#child = undefined;
  }

  /** SIGTERM (the commands stop cleanly on it), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child?.pid) return;
    const hard = setTimeout(() => void this.kill(), 5_000);
    child.kill("SIGTERM");
    await this.#exited;
    clearTimeout(hard);
    this.#child = undefined;
  }
}
