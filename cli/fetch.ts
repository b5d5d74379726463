/**
 * xs-ota fetch URL --out FILE [--size N] [--sha256 HEX] [--window BYTES] [--ca PEM] [--timeout MS]
 *                  [--min-rate BYTES_PER_S] [--rate-window MS]
 *
 * Downloads with the device's own range downloader (modules/transfer/http-download.ts), so it
 * tells whether a server will work for updates: same Range rules, same errors, same rate floor
 * (default 256 bytes/s over 2 minutes; --min-rate 0 turns it off). The bytes go to FILE.xs-ota-part
 * with the progress in FILE.xs-ota-progress; running the command again resumes there. FILE itself
 * is replaced (a rename) only once the whole file is in and its size and --sha256 check out: a
 * refused, failed or wrong download leaves FILE as it was.
 */
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import cliProgress from "cli-progress";
import type { Io } from "./main.ts";
import { withArgs, type CommandSpec } from "./args.ts";
import { isOtaError } from "../modules/errors.ts";
import { downloadRange } from "../modules/transfer/http-download.ts";
import { NodeHttp } from "../hosts/sim/http.ts";
import { NodeClock } from "../hosts/sim/clock.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { streamFile } from "./signing.ts";
import { fsReason, readCaInput } from "./files.ts";

const FETCH: CommandSpec = {
  name: "fetch",
  usage: ["fetch URL --out FILE [--size N] [--sha256 HEX] [--window BYTES] [--ca PEM] [--timeout MS] [--min-rate BYTES_PER_S] [--rate-window MS]"],
  about: ["Downloads URL with the device's own range downloader: tells whether a server will work for updates. Resumes when run again."],
  options: {
    out: { type: "string", value: "FILE", required: true, description: "where the file goes (replaced only once it is whole and checks out)" },
    size: { type: "string", value: "N", description: "the size the file must have" },
    sha256: { type: "string", value: "HEX", description: "the SHA-256 the file must have" },
    window: { type: "string", value: "BYTES", description: "bytes per Range request" },
    ca: { type: "string", value: "PEM", description: "the CA to trust for https://" },
    timeout: { type: "string", value: "MS", description: "per-request timeout" },
    "min-rate": { type: "string", value: "BYTES_PER_S", description: "the rate floor (default 256; 0 turns it off)" },
    "rate-window": { type: "string", value: "MS", description: "the time the rate floor is measured over (default 2 minutes)" },
  },
  positionals: { min: 1, max: 1, name: "URL" },
};
const RECORD_EVERY = 256 * 1024;

interface Progress {
  url: string;
  size: number;
  offset: number;
}

function positive(value: string | undefined, what: string, zeroOk = false): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || (!zeroOk && n === 0)) throw new Error(`${what} must be a ${zeroOk ? "non-negative" : "positive"} integer, got '${value}'`);
  return n;
}

export function fetchCommand(args: string[], io: Io): Promise<number> {
  return withArgs(FETCH, args, io, (a) => {
    const options: Record<string, string> = {};
    for (const name of Object.keys(FETCH.options)) {
      const v = a.string(name);
      if (v !== undefined) options[name] = v;
    }
    return fetchFile(a.positionals[0] ?? "", options, io);
  });
}

async function fetchFile(url: string, options: Record<string, string>, io: Io): Promise<number> {
  const out = options.out;
  const recordPath = `${out}.xs-ota-progress`;
  const partPath = `${out}.xs-ota-part`;
  let size: number | undefined;
  let window: number | undefined;
  let timeout: number | undefined;
  let minRate: number | undefined;
  let rateWindow: number | undefined;
  try {
    size = positive(options.size, "--size");
    window = positive(options.window, "--window", true);
    timeout = positive(options.timeout, "--timeout");
    minRate = positive(options["min-rate"], "--min-rate", true);
    rateWindow = positive(options["rate-window"], "--rate-window");
    if (rateWindow !== undefined && rateWindow < 1000) throw new Error(`--rate-window must be at least 1000 ms, got ${rateWindow}`);
    if (options.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(options.sha256)) throw new Error("--sha256 takes 64 hex digits");
  } catch (e) {
    io.err(`xs-ota fetch: ${(e as Error).message}`);
    return 2;
  }
  const ca = options.ca ? readCaInput(options.ca) : undefined;
  if (existsSync(out) && statSync(out).isDirectory()) {
    io.err(`error: ${out} is a directory; --out names the file to write`);
    return 1;
  }

  // Resume only what a record vouches for: same URL, same size, bytes present in the part file.
  let offset = 0;
  if (existsSync(partPath) && existsSync(recordPath)) {
    try {
      const r = JSON.parse(readFileSync(recordPath, "utf8")) as Progress;
      if (r.url === url && (size === undefined || r.size === size) && Number.isSafeInteger(r.offset) && r.offset >= 0) {
        size = r.size;
        offset = Math.min(r.offset, statSync(partPath).size);
      }
    } catch {
      offset = 0;
    }
  }
  let fd: number;
  try {
    fd = openSync(partPath, offset > 0 ? "r+" : "w");
  } catch (e) {
    io.err(`error: cannot write ${partPath}: ${fsReason(e)}`);
    return 1;
  }
  const hash = nodeDigests.create("sha256");
  if (offset > 0) {
    let left = offset;
    streamFile(partPath, (chunk) => {
      const take = chunk.subarray(0, Math.min(left, chunk.length));
      if (take.length) hash.update(take);
      left -= take.length;
    });
    io.out(`resuming ${out} at ${offset} bytes`);
  }
  const bar = new cliProgress.SingleBar({ format: "{bar} {percentage}% | {value}/{total} bytes", hideCursor: true }, cliProgress.Presets.shades_classic);
  let recorded = offset;
  let written = offset;
  const record = (at: number, total: number) => writeFileSync(recordPath, JSON.stringify({ url, size: total, offset: at } satisfies Progress));
  try {
    const result = await downloadRange({
      http: new NodeHttp(),
      clock: new NodeClock(),
      url,
      size,
      offset,
      window,
      ca,
      timeout,
      rate: { ...(minRate !== undefined ? { minRate } : {}), ...(rateWindow !== undefined ? { window: rateWindow } : {}) },
      onSize: (total) => {
        size = total;
        bar.start(total, offset);
      },
      sink: (chunk, at) => {
        writeSync(fd, chunk, 0, chunk.length, at);
        written = at + chunk.length;
        hash.update(chunk);
        bar.update(at + chunk.length);
        if (at + chunk.length - recorded >= RECORD_EVERY && size !== undefined) {
          record(at + chunk.length, size);
          recorded = at + chunk.length;
        }
      },
    });
    if (size !== undefined && offset === size) bar.start(size, size);
    bar.stop();
    closeSync(fd);
    const digest = Buffer.from(hash.finish()).toString("hex");
    if (options.sha256 && digest !== options.sha256.toLowerCase()) {
      // Not the file that was asked for: nothing of it is kept, and FILE is untouched.
      rmSync(recordPath, { force: true });
      rmSync(partPath, { force: true });
      io.err(`error: sha256 of the download is ${digest}, expected ${options.sha256.toLowerCase()}; ${out} is unchanged`);
      return 1;
    }
    const held = statSync(partPath).size;
    if (held !== result.size) {
      rmSync(recordPath, { force: true });
      rmSync(partPath, { force: true });
      io.err(`error: the download holds ${held} bytes, the file is ${result.size}; ${out} is unchanged`);
      return 1;
    }
    renameSync(partPath, out);
    rmSync(recordPath, { force: true });
    io.out(`saved ${out}: ${result.size} bytes, sha256 ${digest} (${result.requests} requests, ${result.failures} retried, ${result.redirects} redirects)`);
    return 0;
  } catch (e) {
    bar.stop();
    closeSync(fd);
    // Every byte handed to the sink is in the part file: the next run resumes after all of them.
    if (size !== undefined && written > 0) record(written, size);
    else if (offset === 0) rmSync(partPath, { force: true });
    const kept = written > 0 ? `; ${written} bytes kept in ${partPath} for the next run` : "";
    io.err(isOtaError(e) ? `error: ${e.message} [${e.code}]${kept}` : `error: ${e instanceof Error ? e.message : String(e)}${kept}`);
    return 1;
  }
}
