/**
 * The Jobs service's store at fleet scale (cloud/job-store.ts): a device's update appends to
 * jobs.log instead of rewriting jobs.json, what a device was told is on disk when the answer
 * leaves, and a copy of the folder taken at any answer (what a kill -9 leaves) loads to the same
 * state, a torn last line included. The service runs on an in-process broker, so that the test
 * sees each answer at the moment the service hands it over.
 */
import { afterAll, describe, expect, it } from "vitest";
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AwsJobsService } from "../cloud/aws-jobs.ts";
import type { BrokerPacket, BrokerPublish, StreamBroker } from "../cloud/aws-streams.ts";

type Json = Record<string, unknown>;
type Deliver = (packet: BrokerPacket, done: () => void) => void;

const root = mkdtempSync(join(tmpdir(), "xs-ota-job-store-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function matches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  return f.length === t.length && f.every((level, i) => level === "+" || level === t[i]);
}

/** A broker in this process: requests go straight to the service, answers to `onAnswer`. */
class LocalBroker implements StreamBroker {
  readonly #subscribers: { filter: string; deliver: Deliver }[] = [];
  readonly answers: { topic: string; body: Json }[] = [];
  onAnswer: ((topic: string, body: Json) => void) | undefined;
  #tokens = 0;

  subscribe(filter: string, deliver: Deliver, ready: () => void): void {
    this.#subscribers.push({ filter, deliver });
    ready();
  }

  unsubscribe(filter: string, deliver: Deliver, done: () => void): void {
    const i = this.#subscribers.findIndex((s) => s.filter === filter && s.deliver === deliver);
    if (i >= 0) this.#subscribers.splice(i, 1);
    done();
  }

  publish(packet: BrokerPublish, done: (error?: Error) => void): void {
    const body = JSON.parse(packet.payload.toString("utf8")) as Json;
    this.answers.push({ topic: packet.topic, body });
    this.onAnswer?.(packet.topic, body);
    done();
  }

  /** A device's request and the service's answer to it. */
  async call(topic: string, request: Json): Promise<{ outcome: string; body: Json }> {
    const clientToken = `t${++this.#tokens}`;
    const from = this.answers.length;
    const payload = Buffer.from(JSON.stringify({ clientToken, ...request }));
    for (const s of this.#subscribers) if (matches(s.filter, topic)) s.deliver({ topic, payload }, () => undefined);
    for (let i = 0; i < 500; i++) {
      const answer = this.answers.slice(from).find((a) => a.topic.startsWith(`${topic}/`) && a.body["clientToken"] === clientToken);
      if (answer) return { outcome: answer.topic.slice(topic.length + 1), body: answer.body };
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error(`no answer on ${topic}`);
  }
}

const update = (broker: LocalBroker, thing: string, jobId: string, request: Json) => broker.call(`$aws/things/${thing}/jobs/${jobId}/update`, request);

async function fleet(dataDir: string, count: number): Promise<{ broker: LocalBroker; jobs: AwsJobsService; things: string[] }> {
  const broker = new LocalBroker();
  const jobs = new AwsJobsService(broker, { dataDir });
  await jobs.start();
  const things = Array.from({ length: count }, (_, i) => `dev-${i + 1}`);
  await jobs.createJob({ jobId: "fw", document: { operation: "update" }, targets: things });
  return { broker, jobs, things };
}

describe("the Jobs store at fleet scale", () => {
  it("device updates append to jobs.log: jobs.json is not rewritten per update", async () => {
    const dataDir = join(root, "appends");
    const { broker, jobs, things } = await fleet(dataDir, 25);
    const snapshot = statSync(join(dataDir, "jobs.json"));
    const before = jobs.stats;
    for (const thing of things) {
      expect((await update(broker, thing, "fw", { status: "IN_PROGRESS", statusDetails: { receive: "1/2" } })).outcome).toBe("accepted");
      expect((await update(broker, thing, "fw", { status: "SUCCEEDED", expectedVersion: 2 })).outcome).toBe("accepted");
    }
    const after = jobs.stats;
    expect(after.updates - before.updates).toBe(50);
    expect(after.appends - before.appends).toBe(50);
    expect(after.snapshots - before.snapshots).toBe(0);
    // The same file as before the updates: a rename would have made a new one.
    const now = statSync(join(dataDir, "jobs.json"));
    expect([now.ino, now.mtimeMs]).toEqual([snapshot.ino, snapshot.mtimeMs]);
    expect(readFileSync(join(dataDir, "jobs.log"), "utf8").split("\n")).toHaveLength(51);
    expect(jobs.describeJob("fw")?.job.status).toBe("COMPLETED");

    // stop() folds the log into jobs.json; a new service has every execution's last state.
    await jobs.stop();
    expect(readdirSync(dataDir)).toEqual(["jobs.json"]);
    const again = new AwsJobsService(new LocalBroker(), { dataDir });
    const d = again.describeJob("fw");
    expect(d?.job.status).toBe("COMPLETED");
    expect(d?.executions.every((e) => e.status === "SUCCEEDED" && e.versionNumber === 3)).toBe(true);
  });

  it("what a device is told is on disk when the answer leaves: a copy taken then (a kill -9) loads to it", async () => {
    const dataDir = join(root, "killed");
    const { broker, jobs, things } = await fleet(dataDir, 3);
    const copies: string[] = [];
    // At each accepted answer, as the service hands it to the broker, copy the folder: what a
    // kill -9 of the cloud at that moment would leave.
    broker.onAnswer = (topic) => {
      if (!topic.endsWith("/update/accepted")) return;
      const copy = join(root, `killed-${copies.length}`);
      cpSync(dataDir, copy, { recursive: true });
      copies.push(copy);
    };
    const [a, b] = things as [string, string];
    await update(broker, a, "fw", { status: "IN_PROGRESS", statusDetails: { self_test: "active" } });
    await update(broker, a, "fw", { status: "SUCCEEDED", statusDetails: { reason: "accepted v1.0.1" } });
    await update(broker, b, "fw", { status: "IN_PROGRESS" });
    expect(copies).toHaveLength(3);

    const atSucceeded = new AwsJobsService(new LocalBroker(), { dataDir: copies[1] as string });
    expect(atSucceeded.execution(a, "fw")).toMatchObject({ status: "SUCCEEDED", versionNumber: 3, statusDetails: { reason: "accepted v1.0.1" } });
    expect(atSucceeded.execution(b, "fw")).toMatchObject({ status: "QUEUED", versionNumber: 1 });

    // An append cut short has no newline; it was never answered, and is dropped.
    const torn = copies[2] as string;
    appendFileSync(join(torn, "jobs.log"), '{"execution":{"jobId":"fw","thingName":"dev-3","status":"FAI');
    const restarted = new AwsJobsService(new LocalBroker(), { dataDir: torn });
    expect(restarted.execution(b, "fw")).toMatchObject({ status: "IN_PROGRESS", versionNumber: 2 });
    expect(restarted.execution("dev-3", "fw")).toMatchObject({ status: "QUEUED", versionNumber: 1 });
    // Loading folded the log in: the torn line is gone, and updates carry on from there.
    expect(existsSync(join(torn, "jobs.log")) ? readFileSync(join(torn, "jobs.log"), "utf8") : "").toBe("");
    await jobs.stop();
  });

  it("a log older than jobs.json (a cut between the snapshot's rename and the log's truncation) changes nothing", async () => {
    const dataDir = join(root, "stale");
    const { broker, jobs, things } = await fleet(dataDir, 2);
    const [a] = things as [string];
    await update(broker, a, "fw", { status: "IN_PROGRESS" });
    const log = readFileSync(join(dataDir, "jobs.log"));
    await jobs.cancelJob("fw", { force: true });
    writeFileSync(join(dataDir, "jobs.log"), log);
    const again = new AwsJobsService(new LocalBroker(), { dataDir });
    expect(again.execution(a, "fw")).toMatchObject({ status: "CANCELED", versionNumber: 3 });
    expect(again.describeJob("fw")?.job.status).toBe("CANCELED");
  });

  it("the log is folded into jobs.json once it outgrows it, so it stays bounded", async () => {
    const dataDir = join(root, "compaction");
    const { broker, jobs, things } = await fleet(dataDir, 1);
    const [a] = things as [string];
    const before = jobs.stats.snapshots;
    for (let i = 1; i <= 400; i++) await update(broker, a, "fw", { status: "IN_PROGRESS", statusDetails: { receive: `${i}/400`, note: "x".repeat(200) } });
    expect(jobs.stats.snapshots - before).toBeGreaterThanOrEqual(1);
    expect(statSync(join(dataDir, "jobs.log")).size).toBeLessThanOrEqual(64 * 1024 + 1024);
    const copy = join(root, "compaction-copy");
    cpSync(dataDir, copy, { recursive: true });
    expect(new AwsJobsService(new LocalBroker(), { dataDir: copy }).execution(a, "fw")).toMatchObject({ versionNumber: 401, statusDetails: { receive: "400/400" } });
    await jobs.stop();
  });
});
