/**
 * Drives the real XS engine: the `xsnap-worker` binary that @agoric/xsnap builds at install,
 * spoken to directly over its netstring pipes (fd 3 to XS, fd 4 from XS), so the package's
 * SES-hardening wrapper never loads into the test process.
 *
 * Commands are strictly one at a time: while XS runs a script it may call `issueCommand(buf)`,
 * which reaches us as `?bytes` and blocks XS until we answer `/bytes` on the same pipe.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { ensureDeviceEngine } from "./engine/build.ts";
import type { Readable, Writable } from "node:stream";

export interface XsMeters {
  /** XS's deterministic count of operations for the command. */
  compute: number;
  /** Live slots in the XS heap after the command. */
  currentHeapCount: number;
  [name: string]: unknown;
}

export interface XsReply {
  meters: XsMeters;
  /** The script's result when it was an ArrayBuffer, else empty. */
  result: Uint8Array;
}

export class XsError extends Error {
  override name = "XsError";
}

export interface XsWorkerOptions {
  /**
   * The program to run: by default the device-faithful engine (hosts/sim/engine), built at
   * install or, when the install skipped it, on first use; any program that speaks
   * xsnap-worker's netstring protocol on fds 3 and 4 will do.
   */
  binary?: string;
  /** Its arguments (xsnap-worker takes the machine's name). */
  args?: string[];
}

/** Answers an `issueCommand` from XS. XS is blocked until the answer comes, so it may take time (network I/O). */
export type HostCall = (request: Uint8Array) => Uint8Array | Promise<Uint8Array>;

export class XsWorker {
  readonly #child: ChildProcess;
  readonly #toXs: Writable;
  #buffer = Buffer.alloc(0);
  #pending: { resolve: (r: XsReply) => void; reject: (e: Error) => void } | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #printed = "";
  #exited: string | undefined;
  hostCall: HostCall = () => new Uint8Array(0);

  constructor(name = "xs-ota", options: XsWorkerOptions = {}) {
    this.#child = spawn(options.binary ?? ensureDeviceEngine(), options.args ?? [name], { stdio: ["ignore", "pipe", "pipe", "pipe", "pipe"] });
    this.#toXs = this.#child.stdio[3] as Writable;
    const fromXs = this.#child.stdio[4] as Readable;
    fromXs.on("data", (chunk: Buffer) => this.#receive(chunk));
    fromXs.on("error", () => {});
    this.#toXs.on("error", () => {});
    this.#child.stdout?.on("data", (d: Buffer) => (this.#printed += d.toString()));
    this.#child.stderr?.on("data", (d: Buffer) => (this.#printed += d.toString()));
    this.#child.on("exit", (code, signal) => {
      this.#exited = `xsnap-worker exited (${signal ?? code})`;
      this.#pending?.reject(new XsError(`${this.#exited}\n${this.#printed}`));
      this.#pending = undefined;
    });
  }

  /** Text the scripts printed with `print`, drained. */
  takePrinted(): string {
    const s = this.#printed;
    this.#printed = "";
    return s;
  }

  /** Evaluates a script; resolves after XS has also run every job the script queued. */
  evaluate(source: string): Promise<XsReply> {
    const run = this.#queue.then(() => this.#command(Buffer.concat([Buffer.from("e"), Buffer.from(source)])));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Stops the machine at once, wherever it is (a power cut; a pending command rejects). */
  async kill(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.kill("SIGKILL");
    await gone;
  }

  async close(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#send(Buffer.from("q"));
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 2000);
    await gone;
    clearTimeout(timer);
  }

  #command(bytes: Buffer): Promise<XsReply> {
    if (this.#exited) return Promise.reject(new XsError(this.#exited));
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#send(bytes);
    });
  }

  #send(bytes: Buffer): void {
    this.#toXs.write(Buffer.concat([Buffer.from(`${bytes.length}:`), bytes, Buffer.from(",")]));
  }

  #receive(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const colon = this.#buffer.indexOf(0x3a);
      if (colon < 0) return;
      const length = Number(this.#buffer.subarray(0, colon).toString("latin1"));
      if (this.#buffer.length < colon + 2 + length) return;
      const message = this.#buffer.subarray(colon + 1, colon + 1 + length);
      this.#buffer = this.#buffer.subarray(colon + 2 + length);
      this.#dispatch(message);
    }
  }

  #dispatch(message: Buffer): void {
    const kind = String.fromCharCode(message[0]);
    const body = message.subarray(1);
    if (kind === "?") {
      const answer = (reply: Uint8Array) => this.#send(Buffer.concat([Buffer.from("/"), Buffer.from(reply)]));
      const failed = (e: unknown) => answer(new TextEncoder().encode(JSON.stringify({ hostError: String(e) })));
      try {
        Promise.resolve(this.hostCall(new Uint8Array(body))).then(answer, failed);
      } catch (e) {
        failed(e);
      }
      return;
    }
    const pending = this.#pending;
    this.#pending = undefined;
    if (!pending) return;
    if (kind === ".") {
      const split = body.indexOf(0x01);
      const json = (split < 0 ? body : body.subarray(0, split)).toString();
      const result = split < 0 ? new Uint8Array(0) : new Uint8Array(body.subarray(split + 1));
      pending.resolve({ meters: JSON.parse(json) as XsMeters, result });
    } else {
      pending.reject(new XsError(`${body.toString()}${this.#printed ? `\nprinted: ${this.takePrinted()}` : ""}`));
    }
  }
}
