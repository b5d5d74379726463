/**
 * Where AwsJobsService keeps its jobs (Node only): a snapshot, dataDir/jobs.json (every job and
 * every execution), and a log, dataDir/jobs.log, of the execution changes since it was written.
 *
 * A device's update changes one execution, so it appends one line (that execution as it now is)
 * and fdatasyncs the log before the service answers: the cost of an update no longer grows with
 * the fleet, and an answer a device got is on disk when it gets it. That matters: a device that
 * has been told SUCCEEDED forgets its job; if a restarted cloud then offered the job again
 * IN_PROGRESS with {self_test: "active"}, the agent (modules/agent/agent.ts, #begin) would
 * report it FAILED ("the job came back after a reboot, but this device holds no record of it"),
 * a wrong ending. A window of answered-but-unwritten updates is therefore not safe, and the log
 * leaves none.
 *
 * The snapshot is written whole (temporary file, fsync, rename, fsync of the folder) for a job's
 * creation or cancellation, at start when the log has lines, on close, and when the log has grown
 * past twice the snapshot (at least 64 KiB): writing it costs as much as all the lines it
 * replaces, so an update still costs a bounded amount. Only then is the log emptied. A line
 * whose execution's versionNumber is not above the snapshot's is one the snapshot already has
 * (every change raises versionNumber), so a crash between the rename and the truncation repeats
 * nothing. A last line without its newline is an append cut short: its answer was never sent,
 * and it is dropped. Any other line that does not parse stops the cloud with the log's name.
 */
import { closeSync, existsSync, fdatasyncSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { JobExecutionRecord, JobRecord } from "./aws-jobs.ts";

const STATE_VERSION = 1;
const MIN_LOG_BYTES = 64 * 1024;

export interface JobsState {
  sequence: number;
  jobs: JobRecord[];
  executions: JobExecutionRecord[];
}

/** One line of the log: an execution as it now is, and when its change completed the job. */
export interface ExecutionChange {
  execution: JobExecutionRecord;
  completedAt?: number;
}

interface StateFile extends JobsState {
  version: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export class JobStore {
  readonly snapshotFile: string;
  readonly logFile: string;
  readonly #dir: string;
  #fd: number | undefined;
  #logBytes = 0;
  #snapshotBytes = 0;
  /** Whole snapshots written, and lines appended, since this store was made. */
  snapshots = 0;
  appends = 0;

  constructor(dir: string) {
    this.#dir = dir;
    this.snapshotFile = join(dir, "jobs.json");
    this.logFile = join(dir, "jobs.log");
  }

  /** The state on disk, the log's changes applied; undefined when there is none. Compacts a log that has anything in it. */
  load(): JobsState | undefined {
    const state = this.#readSnapshot();
    const changes = this.#readLog();
    if (changes === undefined) return state;
    if (state === undefined) throw new Error(`${this.logFile}: there is a log of execution changes but no ${this.snapshotFile}; move the log away to start with no jobs`);
    const executions = new Map(state.executions.map((e) => [`${e.thingName}/${e.jobId}`, e]));
    const jobs = new Map(state.jobs.map((j) => [j.jobId, j]));
    for (const change of changes) {
      const e = change.execution;
      const key = `${e.thingName}/${e.jobId}`;
      const known = executions.get(key);
      if (known === undefined || e.versionNumber <= known.versionNumber) continue;
      state.executions[state.executions.indexOf(known)] = e;
      executions.set(key, e);
      const job = jobs.get(e.jobId);
      if (change.completedAt !== undefined && job?.status === "IN_PROGRESS") {
        job.status = "COMPLETED";
        job.completedAt = change.completedAt;
        job.lastUpdatedAt = change.completedAt;
      }
    }
    this.snapshot(state);
    return state;
  }

  /** Writes the whole state atomically, then empties the log. */
  snapshot(state: JobsState): void {
    const file: StateFile = { version: STATE_VERSION, ...state };
    const text = JSON.stringify(file, null, 1);
    const temp = `${this.snapshotFile}.${process.pid}.tmp`;
    const fd = openSync(temp, "w");
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, this.snapshotFile);
    // The rename must be on disk before the log is emptied, or a crash could leave the old
    // snapshot and no log.
    this.#syncDir();
    this.snapshots++;
    this.#snapshotBytes = Buffer.byteLength(text);
    if (this.#fd !== undefined) {
      ftruncateSync(this.#fd, 0);
      fdatasyncSync(this.#fd);
    } else if (existsSync(this.logFile)) unlinkSync(this.logFile);
    this.#logBytes = 0;
  }

  /** Appends one change and waits for the disk; `state` gives the whole state for a compaction. */
  append(change: ExecutionChange, state: () => JobsState): void {
    const line = JSON.stringify(change) + "\n";
    const fd = this.#open();
    writeSync(fd, line);
    fdatasyncSync(fd);
    this.appends++;
    this.#logBytes += Buffer.byteLength(line);
    if (this.#logBytes > Math.max(MIN_LOG_BYTES, 2 * this.#snapshotBytes)) this.snapshot(state());
  }

  /** Folds the log into the snapshot and lets go of the log. */
  close(state: JobsState): void {
    if (this.#fd === undefined && !existsSync(this.logFile)) return;
    this.snapshot(state);
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    if (existsSync(this.logFile)) unlinkSync(this.logFile);
  }

  #open(): number {
    if (this.#fd !== undefined) return this.#fd;
    const created = !existsSync(this.logFile);
    this.#fd = openSync(this.logFile, "a");
    // A new file's name is in the folder, which its own fdatasync does not write.
    if (created) this.#syncDir();
    return this.#fd;
  }

  #syncDir(): void {
    let fd: number | undefined;
    try {
      fd = openSync(this.#dir, "r");
      fsyncSync(fd);
    } catch {
      // Some systems (Windows) cannot open or sync a folder; there the rename is as durable as the OS makes it.
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  #readSnapshot(): JobsState | undefined {
    const file = this.snapshotFile;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
    let state: StateFile;
    try {
      state = JSON.parse(text) as StateFile;
    } catch (e) {
      throw new Error(`${file}: not JSON (${e instanceof Error ? e.message : String(e)}); move it away to start with no jobs`);
    }
    if (!isObject(state) || state.version !== STATE_VERSION || !Array.isArray(state.jobs) || !Array.isArray(state.executions)) {
      throw new Error(`${file}: not a jobs state file of version ${STATE_VERSION}`);
    }
    this.#snapshotBytes = Buffer.byteLength(text);
    return { sequence: state.sequence, jobs: state.jobs, executions: state.executions };
  }

  /** The log's changes, oldest first; undefined when there is no log or it is empty. */
  #readLog(): ExecutionChange[] | undefined {
    let text: string;
    try {
      text = readFileSync(this.logFile, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
    if (text.length === 0) return undefined;
    const lines = text.split("\n");
    // After the last newline: empty, or an append cut short (never answered).
    lines.pop();
    return lines.map((line, i) => {
      let change: unknown;
      try {
        change = JSON.parse(line);
      } catch (e) {
        throw new Error(`${this.logFile}: line ${i + 1} is not JSON (${e instanceof Error ? e.message : String(e)})`);
      }
      const e = isObject(change) ? change["execution"] : undefined;
      if (!isObject(e) || typeof e["jobId"] !== "string" || typeof e["thingName"] !== "string" || typeof e["versionNumber"] !== "number") {
        throw new Error(`${this.logFile}: line ${i + 1} is not an execution change`);
      }
      return change as unknown as ExecutionChange;
    });
  }
}
