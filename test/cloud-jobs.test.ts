/**
 * cloud/aws-jobs.ts over a real broker (aedes) with a plain mqtt.js client as the device, and the
 * agent (modules/) updating a simulated device end to end against AwsJobsService + FileService
 * over HTTPS with the local CA of cloud/tls.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { startBroker, type TestBroker } from "./support/broker.ts";
import { SimDevice, until } from "./support/sim-device.ts";
import { appImage, sign, signerPem } from "./contract/agent-fixture.ts";
import { AwsJobsService } from "../cloud/aws-jobs.ts";
import { FileService } from "../cloud/files.ts";
import { makeLocalCa, type LocalCa } from "../cloud/tls.ts";

type Json = Record<string, unknown>;
interface Message {
  topic: string;
  body: Json;
}

const root = mkdtempSync(join(tmpdir(), "xs-ota-cloud-jobs-"));
let broker: TestBroker;
let client: MqttClient;
const messages: Message[] = [];
let tokens = 0;

beforeAll(async () => {
  broker = await startBroker();
  client = await connectAsync(broker.url, { clientId: "cloud-jobs-device" });
  client.on("message", (topic, payload) => {
    let body: Json;
    try {
      body = JSON.parse(payload.toString("utf8")) as Json;
    } catch {
      body = { unparsable: payload.toString("hex") };
    }
    messages.push({ topic, body });
  });
  await client.subscribeAsync("$aws/things/+/jobs/#", { qos: 1 });
});
afterAll(async () => {
  await client?.endAsync();
  await broker?.close();
  rmSync(root, { recursive: true, force: true });
});

async function waitFor(pred: (m: Message) => boolean, from: number, what: string): Promise<Message> {
  let found: Message | undefined;
  await until(() => (found = messages.slice(from).find(pred)) !== undefined, 5000, what);
  return found as Message;
}

/** Publishes `body` (with a fresh clientToken when it is an object) to `topic`; the answer. */
async function call(topic: string, body: Json | string | Uint8Array): Promise<{ outcome: "accepted" | "rejected"; body: Json }> {
  const from = messages.length;
  let payload: string | Buffer;
  let token: string | undefined;
  if (typeof body === "string") payload = body;
  else if (body instanceof Uint8Array) payload = Buffer.from(body);
  else {
    token = typeof body["clientToken"] === "string" ? body["clientToken"] : `t${++tokens}`;
    payload = JSON.stringify({ clientToken: token, ...body });
  }
  await client.publishAsync(topic, payload, { qos: 1 });
  const m = await waitFor(
    (x) => (x.topic === `${topic}/accepted` || x.topic === `${topic}/rejected`) && (token === undefined || x.body["clientToken"] === token),
    from,
    `an answer on ${topic}`,
  );
  return { outcome: m.topic.endsWith("/accepted") ? "accepted" : "rejected", body: m.body };
}

const jobsTopic = (thing: string, rest: string) => `$aws/things/${thing}/jobs/${rest}`;
const update = (thing: string, jobId: string, body: Json) => call(jobsTopic(thing, `${jobId}/update`), body);
const nextGet = (thing: string, body: Json = {}) => call(jobsTopic(thing, "$next/get"), body);
const notifies = (thing: string, from = 0) => messages.slice(from).filter((m) => m.topic === jobsTopic(thing, "notify-next"));
const execOf = (m: Message | { body: Json }) => m.body["execution"] as Json | undefined;

describe("AwsJobsService over MQTT", () => {
  let jobs: AwsJobsService;
  beforeAll(async () => {
    jobs = new AwsJobsService(broker.aedes, { dataDir: join(root, "main") });
    await jobs.start();
  });
  afterAll(async () => {
    await jobs?.stop();
  });

  it("QUEUED -> IN_PROGRESS -> SUCCEEDED: versions, statusDetails, includes, notify-next, then terminal", async () => {
    const from = messages.length;
    const doc = { operation: "test", n: 1 };
    await jobs.createJob({ jobId: "j1", document: doc, targets: ["dev-a"] });
    const notified = await waitFor((m) => m.topic === jobsTopic("dev-a", "notify-next"), from, "notify-next");
    expect(execOf(notified)).toMatchObject({ jobId: "j1", thingName: "dev-a", status: "QUEUED", versionNumber: 1, executionNumber: 1, jobDocument: doc });

    const next = await nextGet("dev-a");
    expect(next.outcome).toBe("accepted");
    expect(execOf(next)).toMatchObject({ jobId: "j1", status: "QUEUED", versionNumber: 1, jobDocument: doc });
    expect(typeof next.body["timestamp"]).toBe("number");
    const noDoc = await nextGet("dev-a", { includeJobDocument: false });
    expect(execOf(noDoc)?.["jobDocument"]).toBeUndefined();

    const started = await update("dev-a", "j1", { status: "IN_PROGRESS", expectedVersion: 1, statusDetails: { receive: "1/10" }, includeJobExecutionState: true });
    expect(started.outcome).toBe("accepted");
    expect(started.body["executionState"]).toEqual({ status: "IN_PROGRESS", statusDetails: { receive: "1/10" }, versionNumber: 2 });
    expect(started.body["jobDocument"]).toBeUndefined();

    // Without statusDetails they are kept; with includeJobDocument the document comes back.
    const again = await update("dev-a", "j1", { status: "IN_PROGRESS", includeJobExecutionState: true, includeJobDocument: true });
    expect(again.body["executionState"]).toEqual({ status: "IN_PROGRESS", statusDetails: { receive: "1/10" }, versionNumber: 3 });
    expect(again.body["jobDocument"]).toEqual(doc);
    expect(jobs.execution("dev-a", "j1")?.startedAt).toBeTypeOf("number");

    const done = await update("dev-a", "j1", { status: "SUCCEEDED", expectedVersion: 3, statusDetails: { reason: "accepted v1.0.1" } });
    expect(done.outcome).toBe("accepted");
    expect(done.body["executionState"]).toBeUndefined();
    await until(() => notifies("dev-a", from).length === 2, 5000, "notify-next of none");
    expect(execOf(notifies("dev-a", from)[1] as Message)).toBeUndefined();
    expect(jobs.describeJob("j1")?.job).toMatchObject({ status: "COMPLETED", jobProcessDetails: { numberOfSucceededThings: 1, numberOfQueuedThings: 0 } });

    for (const status of ["IN_PROGRESS", "FAILED", "SUCCEEDED"]) {
      const late = await update("dev-a", "j1", { status, expectedVersion: 4 });
      expect(late.outcome).toBe("rejected");
      expect(late.body).toMatchObject({ code: "InvalidStateTransition", executionState: { status: "SUCCEEDED", versionNumber: 4, statusDetails: { reason: "accepted v1.0.1" } } });
    }
    expect(jobs.execution("dev-a", "j1")?.versionNumber).toBe(4);
    expect(execOf(await nextGet("dev-a"))).toBeUndefined();
  });

  it("VersionMismatch with the current executionState; statuses a device may not set", async () => {
    await jobs.createJob({ jobId: "j2", document: { x: 1 }, targets: ["dev-b"] });
    const wrong = await update("dev-b", "j2", { status: "IN_PROGRESS", expectedVersion: 7 });
    expect(wrong).toMatchObject({ outcome: "rejected", body: { code: "VersionMismatch", executionState: { status: "QUEUED", versionNumber: 1 } } });
    expect(wrong.body["clientToken"]).toMatch(/^t\d+$/);
    for (const status of ["QUEUED", "CANCELED", "TIMED_OUT", "REMOVED"]) {
      expect((await update("dev-b", "j2", { status })).body["code"], status).toBe("InvalidStateTransition");
    }
    expect((await update("dev-b", "j2", { status: "DONE" })).body["code"]).toBe("InvalidRequest");
    expect(jobs.execution("dev-b", "j2")).toMatchObject({ status: "QUEUED", versionNumber: 1 });
    const rejected = await update("dev-b", "j2", { status: "REJECTED", expectedVersion: 1, statusDetails: { reason: "no" }, includeJobExecutionState: true });
    expect(rejected.body["executionState"]).toEqual({ status: "REJECTED", statusDetails: { reason: "no" }, versionNumber: 2 });
    expect((await update("dev-b", "j2", { status: "IN_PROGRESS" })).body["code"]).toBe("InvalidStateTransition");
  });

  it("a job for several things: one execution each, job COMPLETED when all are terminal", async () => {
    const things = ["multi-1", "multi-2", "multi-3"];
    const from = messages.length;
    await jobs.createJob({ jobId: "fleet", document: { v: "2" }, targets: things });
    for (const t of things) await waitFor((m) => m.topic === jobsTopic(t, "notify-next") && execOf(m)?.["jobId"] === "fleet", from, `notify ${t}`);
    expect(jobs.describeJob("fleet")?.executions.map((e) => [e.thingName, e.status])).toEqual(things.map((t) => [t, "QUEUED"]));
    expect((await update("multi-1", "fleet", { status: "SUCCEEDED" })).outcome).toBe("accepted");
    expect((await update("multi-2", "fleet", { status: "FAILED", statusDetails: { reason: "self-test" } })).outcome).toBe("accepted");
    expect(jobs.describeJob("fleet")?.job.status).toBe("IN_PROGRESS");
    expect(execOf(await nextGet("multi-3"))?.["jobId"]).toBe("fleet");
    expect((await update("multi-3", "fleet", { status: "IN_PROGRESS" })).outcome).toBe("accepted");
    expect((await update("multi-3", "fleet", { status: "SUCCEEDED" })).outcome).toBe("accepted");
    const d = jobs.describeJob("fleet");
    expect(d?.job).toMatchObject({ status: "COMPLETED", jobProcessDetails: { numberOfSucceededThings: 2, numberOfFailedThings: 1 } });
    expect(d?.executions.map((e) => [e.thingName, e.status, e.versionNumber])).toEqual([
      ["multi-1", "SUCCEEDED", 2],
      ["multi-2", "FAILED", 2],
      ["multi-3", "SUCCEEDED", 3],
    ]);
    expect(jobs.listJobs().map((j) => j.jobId)).toContain("fleet");
    await expect(jobs.createJob({ jobId: "fleet", document: {}, targets: ["x"] })).rejects.toThrow(/exists/);
    await expect(jobs.createJob({ jobId: "bad id", document: {}, targets: ["x"] })).rejects.toThrow(/job ID/);
    await expect(jobs.createJob({ jobId: "no-targets", document: {}, targets: [] })).rejects.toThrow(/target/);
  });

  it("notify-next follows the next pending execution: IN_PROGRESS first, then queue order, cancel, none", async () => {
    const t = "order-dev";
    const from = messages.length;
    await jobs.createJob({ jobId: "first", document: { n: 1 }, targets: [t] });
    await jobs.createJob({ jobId: "second", document: { n: 2 }, targets: [t] });
    await jobs.createJob({ jobId: "third", document: { n: 3 }, targets: [t] });
    const ids = () => notifies(t, from).map((m) => (execOf(m)?.["jobId"] as string | undefined) ?? "none");
    await until(() => ids().length >= 1, 5000, "a notify");
    await jobs.idle();
    expect(ids()).toEqual(["first"]); // the later jobs do not change the next one
    expect((await update(t, "third", { status: "IN_PROGRESS" })).outcome).toBe("accepted");
    await until(() => ids().length === 2, 5000, "third is next");
    expect(ids()).toEqual(["first", "third"]);
    expect(execOf(await nextGet(t))).toMatchObject({ jobId: "third", status: "IN_PROGRESS" });
    await jobs.cancelJob("first");
    await jobs.idle();
    expect(ids()).toEqual(["first", "third"]); // still third
    expect(jobs.execution(t, "first")?.status).toBe("CANCELED");
    expect((await update(t, "first", { status: "IN_PROGRESS" })).body["code"]).toBe("InvalidStateTransition");
    await jobs.cancelJob("third"); // IN_PROGRESS stays without force
    expect(jobs.execution(t, "third")?.status).toBe("IN_PROGRESS");
    await jobs.cancelJob("second");
    expect(jobs.execution(t, "second")?.status).toBe("CANCELED");
    await jobs.createJob({ jobId: "fourth", document: { n: 4 }, targets: [t] });
    expect((await update(t, "third", { status: "SUCCEEDED" })).outcome).toBe("accepted");
    await until(() => ids().length === 3, 5000, "fourth is next");
    expect(ids()[2]).toBe("fourth");
    await jobs.cancelJob("fourth", { force: true });
    await until(() => ids().length === 4, 5000, "none");
    expect(ids()).toEqual(["first", "third", "fourth", "none"]);
    expect(jobs.describeJob("third")?.job.status).toBe("CANCELED");
  });

  it("malformed requests get AWS's errors and never stop the service", async () => {
    const t = "bad-req";
    await jobs.createJob({ jobId: "jb", document: {}, targets: [t] });
    const up = jobsTopic(t, "jb/update");
    expect((await call(up, "{not json")).body).toMatchObject({ code: "InvalidJson" });
    expect((await call(up, Uint8Array.of(0xff, 0xfe, 0x7b))).body).toMatchObject({ code: "InvalidJson" });
    expect((await call(up, "")).body).toMatchObject({ code: "InvalidJson" });
    expect((await call(up, "[1,2]")).body).toMatchObject({ code: "InvalidRequest" });
    expect((await call(up, "null")).body).toMatchObject({ code: "InvalidRequest" });
    const bad: Json[] = [
      {},
      { status: 5 },
      { status: "IN_PROGRESS", statusDetails: "x" },
      { status: "IN_PROGRESS", statusDetails: { "bad key!": "v" } },
      { status: "IN_PROGRESS", statusDetails: { k: 1 } },
      { status: "IN_PROGRESS", statusDetails: { k: "" } },
      { status: "IN_PROGRESS", statusDetails: { k: "a\u0000b" } },
      { status: "IN_PROGRESS", statusDetails: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, "v"])) },
      { status: "IN_PROGRESS", expectedVersion: "1" },
      { status: "IN_PROGRESS", expectedVersion: -1 },
      { status: "IN_PROGRESS", includeJobExecutionState: "yes" },
      { status: "IN_PROGRESS", stepTimeoutInMinutes: 0 },
      { status: "IN_PROGRESS", stepTimeoutInMinutes: 10081 },
    ];
    for (const body of bad) {
      const r = await update(t, "jb", body);
      expect(r.body["code"], JSON.stringify(body)).toBe("InvalidRequest");
    }
    // An invalid token is refused and not echoed.
    const from = messages.length;
    await client.publishAsync(up, JSON.stringify({ status: "IN_PROGRESS", clientToken: "x".repeat(65) }), { qos: 1 });
    const tokenless = await waitFor((m) => m.topic === `${up}/rejected`, from, "rejection");
    expect(tokenless.body["code"]).toBe("InvalidRequest");
    expect(tokenless.body["clientToken"]).toBeUndefined();

    expect((await update(t, "no-such-job", { status: "IN_PROGRESS" })).body["code"]).toBe("ResourceNotFound");
    expect((await update(t, "jb", { status: "IN_PROGRESS", executionNumber: 2 })).body["code"]).toBe("ResourceNotFound");
    expect((await call(jobsTopic(t, "$next/update"), { status: "IN_PROGRESS" })).body["code"]).toBe("InvalidTopic");
    expect((await call(jobsTopic(t, `${"j".repeat(65)}/update`), { status: "IN_PROGRESS" })).body["code"]).toBe("InvalidTopic");
    expect((await call(jobsTopic("bad thing!", "$next/get"), {})).body["code"]).toBe("InvalidTopic");
    expect((await call(jobsTopic(t, "no-such-job/get"), {})).body["code"]).toBe("ResourceNotFound");
    expect((await nextGet(t, { includeJobDocument: "no" })).body["code"]).toBe("InvalidRequest");

    // Nothing of that changed the execution, and the service still answers.
    expect(jobs.execution(t, "jb")).toMatchObject({ status: "QUEUED", versionNumber: 1 });
    expect((await call(jobsTopic(t, "jb/get"), {})).body["execution"]).toMatchObject({ jobId: "jb", status: "QUEUED" });
    expect((await update(t, "jb", { status: "IN_PROGRESS", expectedVersion: 1 })).outcome).toBe("accepted");
    expect(jobs.lastError).toBeUndefined();
    expect(jobs.log.filter((e) => e.thing === t && e.outcome === "InvalidJson")).toHaveLength(3);
  });

  it("start-next moves the next QUEUED execution to IN_PROGRESS", async () => {
    const t = "starter";
    await jobs.createJob({ jobId: "s1", document: { a: 1 }, targets: [t] });
    const r = await call(jobsTopic(t, "start-next"), { statusDetails: { step: "1" } });
    expect(execOf(r)).toMatchObject({ jobId: "s1", status: "IN_PROGRESS", versionNumber: 2, statusDetails: { step: "1" }, jobDocument: { a: 1 } });
    const r2 = await call(jobsTopic(t, "start-next"), {});
    expect(execOf(r2)).toMatchObject({ jobId: "s1", status: "IN_PROGRESS", versionNumber: 2 });
  });
});

describe("AwsJobsService state on disk", () => {
  it("every change is on disk (jobs.json, and jobs.log until stop() folds it in); a new service on it has the jobs", async () => {
    const dataDir = join(root, "restart");
    const first = new AwsJobsService(broker.aedes, { dataDir });
    await first.start();
    await first.createJob({ jobId: "persist", document: { keep: true }, targets: ["keeper", "other"] });
    await first.createJob({ jobId: "later", document: { n: 2 }, targets: ["keeper"] });
    expect((await update("keeper", "persist", { status: "IN_PROGRESS", statusDetails: { receive: "3/9" } })).outcome).toBe("accepted");
    expect((await update("other", "persist", { status: "FAILED" })).outcome).toBe("accepted");
    await first.stop();
    expect(readdirSync(dataDir)).toEqual(["jobs.json"]);
    const onDisk = JSON.parse(readFileSync(join(dataDir, "jobs.json"), "utf8")) as { jobs: unknown[]; executions: unknown[] };
    expect(onDisk.jobs).toHaveLength(2);
    expect(onDisk.executions).toHaveLength(3);

    const second = new AwsJobsService(broker.aedes, { dataDir });
    await second.start();
    try {
      expect(second.listJobs().map((j) => j.jobId)).toEqual(["persist", "later"]);
      const next = await nextGet("keeper");
      expect(execOf(next)).toMatchObject({ jobId: "persist", status: "IN_PROGRESS", versionNumber: 2, statusDetails: { receive: "3/9" }, jobDocument: { keep: true } });
      expect((await update("other", "persist", { status: "SUCCEEDED" })).body["code"]).toBe("InvalidStateTransition");
      expect((await update("keeper", "persist", { status: "SUCCEEDED", expectedVersion: 2 })).outcome).toBe("accepted");
      expect(second.describeJob("persist")?.job.status).toBe("COMPLETED");
      expect(execOf(await nextGet("keeper"))?.["jobId"]).toBe("later");
      // New jobs after a restart keep the creation order.
      await second.createJob({ jobId: "newest", document: {}, targets: ["keeper"] });
      expect(second.next("keeper")?.jobId).toBe("later");
    } finally {
      await second.stop();
    }
    const third = new AwsJobsService(broker.aedes, { dataDir });
    expect(third.describeJob("persist")?.executions.map((e) => e.status)).toEqual(["SUCCEEDED", "FAILED"]);
    expect(third.listJobs()).toHaveLength(3);
    expect(existsSync(join(dataDir, "jobs.json"))).toBe(true);
  });
});

describe("the agent against AwsJobsService + FileService over HTTPS", () => {
  const v101 = appImage("1.0.1", 30_000);
  const v102 = appImage("1.0.2", 40_000);
  let ca: LocalCa;
  let files: FileService;
  let jobs: AwsJobsService;
  const devices: SimDevice[] = [];
  const presigned: { name: string; expired: boolean }[] = [];

  beforeAll(async () => {
    ca = await makeLocalCa(join(root, "ca"));
    files = new FileService();
    await files.start({ tls: { key: ca.serverKey, cert: ca.serverCert } });
    files.addFile("fw/app-1.0.1.bin", v101);
    files.addFile("fw/app-1.0.2.bin", v102);
    jobs = new AwsJobsService(broker.aedes, {
      dataDir: join(root, "e2e"),
      // Until the file service has refused a URL, hand out expired ones (for the expiry test).
      presign: (name, expiresIn) => {
        const expired = (files.counters.byStatus[403] ?? 0) === 0;
        presigned.push({ name, expired });
        return files.presign(name, { expiresIn: expired ? -60 : expiresIn, https: true });
      },
    });
    await jobs.start();
  });
  afterAll(async () => {
    for (const d of devices) await d.powerCut();
    await jobs?.stop();
    await files?.stop();
  });

  function device(thing: string): SimDevice {
    const d = new SimDevice({ thing, brokerUrl: broker.url, keys: { "signer.crt": signerPem() }, config: { ca: ca.caCert } });
    devices.push(d);
    return d;
  }
  const httpDoc = (url: string, image: Uint8Array) => ({
    afr_ota: {
      protocols: ["HTTP"],
      files: [{ filepath: "/fw", fileid: 0, certfile: "signer.crt", auth_scheme: "aws.s3.presigned", filesize: image.length, update_data_url: url, "sig-sha256-ecdsa": sign(image) }],
    },
  });

  it("downloads over HTTPS from a presigned URL, reboots, self-tests: SUCCEEDED", async () => {
    const thing = "cloud-e2e";
    const url = files.presign("fw/app-1.0.1.bin", { expiresIn: 3600, https: true });
    await jobs.createJob({ jobId: "ota-101", document: httpDoc(url, v101), targets: [thing] });
    const before = files.counters.bytesServed;
    const d = device(thing);
    await d.start();
    await until(() => jobs.execution(thing, "ota-101")?.status === "SUCCEEDED", 20_000, "SUCCEEDED");
    await d.settled();
    expect(d.version).toBe("1.0.1");
    expect(jobs.execution(thing, "ota-101")?.statusDetails).toEqual({ reason: "accepted v1.0.1", updatedBy: "v1.0.0" });
    expect(files.counters.bytesServed - before).toBeGreaterThanOrEqual(v101.length);
    expect(jobs.describeJob("ota-101")?.job.status).toBe("COMPLETED");
  });

  it("an expired URL: 403, the device asks for the job again, gets a fresh URL and finishes", async () => {
    const thing = "cloud-e2e-expiry";
    expect(files.counters.byStatus[403] ?? 0).toBe(0);
    await jobs.createJob({
      jobId: "ota-102",
      document: httpDoc("${aws:iot:s3-presigned-url:fw/app-1.0.2.bin}", v102),
      targets: [thing],
      presignedUrlConfig: { expiresInSec: 600 },
    });
    const d = device(thing);
    await d.start();
    await until(() => jobs.execution(thing, "ota-102")?.status === "SUCCEEDED", 20_000, "SUCCEEDED");
    await d.settled();
    expect(d.version).toBe("1.0.2");
    expect(files.counters.byStatus[403]).toBe(1);
    // The device asked for its job again after the refusal and got a fresh URL that time.
    const asks = jobs.log.filter((e) => e.thing === thing && e.operation === "describe");
    expect(asks.length).toBeGreaterThanOrEqual(2);
    expect(presigned.filter((p) => p.expired).length).toBeGreaterThanOrEqual(1);
    expect(presigned.filter((p) => !p.expired).length).toBeGreaterThanOrEqual(1);
    expect(presigned.every((p) => p.name === "fw/app-1.0.2.bin")).toBe(true);
  });
});
