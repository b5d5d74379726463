/**
 * The soak's kill schedule and its reading of the simulator's log: which phase of an update the
 * device is in (from the lines its firmware and the simulator print), when a planned kill's
 * moment has come, and why a failed job failed.
 */

/** Where an update is, as the device's log shows it. */
export type Phase = "idle" | "downloading" | "verified" | "restarting" | "trial-boot" | "self-test" | "confirm" | "old-image" | "booted";

export const KILL_PHASES = ["downloading", "verified", "restarting", "trial-boot", "self-test", "confirm"] as const;
export type KillAt = (typeof KILL_PHASES)[number] | "random";

export interface PlannedKill {
  target: "sim" | "cloud";
  at: KillAt;
  /** Milliseconds after the moment (or, for "random", after the job's creation). */
  delay: number;
  /** "downloading": the share of the image received when it fires. */
  fraction: number;
}

export interface UpdatePlan {
  kills: PlannedKill[];
  /** Kill the cloud after the previous job ended, before this one is created. */
  cloudBetween: boolean;
  /** Kill the cloud this many ms after the request that creates the job is sent (while it stores it). */
  cloudAtCreate: number | undefined;
}

/** A kill that happened: who, what was planned, and the phase the device's log was in. */
export interface Kill {
  target: string;
  planned: string;
  phase: Phase;
}

/** Up to this long after a job is created, a random kill lands somewhere in its update. */
const RANDOM_MS = 5_000;

/**
 * Update i (1-based): in every 8, one device kill at each phase in turn, one update without a
 * planned phase kill and one with a kill at a random moment; a quarter of the others get a random
 * device kill too; every 16th a second kill during the same trial boot (FAILED by design); the
 * cloud killed during some downloads, at random moments, between jobs and while it creates one.
 */
export function planUpdate(i: number, rng: () => number): UpdatePlan {
  const kills: PlannedKill[] = [];
  const slot = (i - 1) % 8;
  const at = KILL_PHASES[slot];
  if (at !== undefined) kills.push({ target: "sim", at, delay: at === "self-test" ? Math.floor(rng() * 600) : 0, fraction: 0.1 + rng() * 0.8 });
  else if (slot === 7) kills.push({ target: "sim", at: "random", delay: Math.floor(rng() * RANDOM_MS), fraction: 0 });
  if (i % 16 === 4) kills.push({ target: "sim", at: "self-test", delay: Math.floor(rng() * 600), fraction: 0 });
  else if (slot !== 7 && rng() < 0.25) kills.push({ target: "sim", at: "random", delay: Math.floor(rng() * RANDOM_MS), fraction: 0 });
  const r = rng();
  if (r < 0.2) kills.push({ target: "cloud", at: "downloading", delay: 0, fraction: 0.1 + rng() * 0.8 });
  else if (r < 0.3) kills.push({ target: "cloud", at: "random", delay: Math.floor(rng() * RANDOM_MS), fraction: 0 });
  const between = rng() < 0.15;
  const atCreate = !between && rng() < 0.15 ? Math.floor(rng() * 60) : undefined;
  return { kills, cloudBetween: between, cloudAtCreate: atCreate };
}

interface Watcher {
  at: Exclude<KillAt, "random">;
  fraction: number;
  fn: () => void;
}

/** Reads the simulator's lines for one device. */
export class Tracker {
  readonly #prefix: string;
  phase: Phase = "idle";
  /** The version the device booted last. */
  running: string | undefined;
  /** The newest version that confirmed itself. */
  confirmed: string | undefined;
  #version = "";
  readonly #watchers = new Set<Watcher>();
  onBoot: (version: string) => void = () => undefined;
  onHalt: (reason: string) => void = () => undefined;

  constructor(thing: string) {
    this.#prefix = `${thing}  `;
  }

  /** A new job for `version` starts. */
  begin(_jobId: string, version: string): void {
    this.#version = version;
    this.phase = "idle";
  }

  /** Calls `fn` each time the device reaches `at` (with "downloading": `fraction` of the image); returns the cancel. */
  when(at: Exclude<KillAt, "random">, fraction: number, fn: () => void): () => void {
    const w: Watcher = { at, fraction, fn };
    this.#watchers.add(w);
    return () => this.#watchers.delete(w);
  }

  #reach(phase: Phase, share = 1): void {
    this.phase = phase;
    for (const w of [...this.#watchers]) if (w.at === phase && share >= w.fraction) w.fn();
  }

  line(raw: string): void {
    if (!raw.startsWith(this.#prefix)) return;
    const text = raw.slice(this.#prefix.length);
    let m: RegExpExecArray | null;
    if ((m = /^boot \d+: \S+ runs (\S+)/.exec(text))) {
      const version = m[1] ?? "";
      this.running = version;
      this.onBoot(version);
      if (version === this.#version && text.includes("PENDING_VERIFY")) this.#reach("trial-boot");
      else this.phase = version === this.#version ? "booted" : this.phase === "idle" ? "idle" : "old-image";
    } else if ((m = /^halted: (.*)/.exec(text))) {
      this.onHalt(m[1] ?? "");
    } else if (/^info: job \S+: (downloading|resuming) /.test(text)) {
      this.#reach("downloading", 0);
    } else if ((m = /^debug: job \S+: (\d+)\/(\d+) bytes/.exec(text))) {
      this.#reach("downloading", Number(m[1]) / Number(m[2]));
    } else if (/^info: job \S+: \S+ verified/.test(text)) {
      this.#reach("verified");
    } else if (/^restart: restart\(\) by the firmware/.test(text)) {
      this.#reach("restarting");
    } else if (/^info: self-test running/.test(text)) {
      this.#reach("self-test");
    } else if ((m = /^info: job \S+: self-test passed; (\S+) confirmed/.exec(text))) {
      this.confirmed = m[1];
      this.#reach("confirm");
    }
  }
}

/** Why a job failed, when the kills that led to it make it the designed outcome. */
export function explain(reason: string, kills: readonly Kill[]): string {
  const inTrial = kills.filter((k) => k.target === "sim" && (k.phase === "restarting" || k.phase === "trial-boot" || k.phase === "self-test")).length;
  if (/interrupted twice/.test(reason) && inTrial >= 2) {
    return `expected: ${inTrial} device kills between the restart into the new image and its self-test's verdict; the agent retries an interrupted trial boot once, then fails it (by design)`;
  }
  return "UNEXPLAINED";
}
