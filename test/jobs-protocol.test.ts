/**
 * AWS IoT Jobs and EnOS OTA on the device side: exact message shapes, AWS's statusDetails limits,
 * parsers that never throw, and both clients end to end over aedes against the local cloud services (cloud/aws-jobs.ts, cloud/enos.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AwsJobsClient,
  JOBS_LIMITS,
  acceptedDetails,
  checkStatusDetails,
  failedWithValueDetails,
  jobTopics,
  nextGetRequest,
  parseJobsResponse,
  reasonDetails,
  receiveDetails,
  selfTestDetails,
  startNextRequest,
  statusDetailsProblem,
  updateRequest,
  type JobNotice,
  type JobsResponse,
} from "../modules/aws/jobs.ts";
import {
  ENOS_STEP,
  EnosOtaClient,
  enosGetVersionRequest,
  enosInformRequest,
  enosProgressRequest,
  enosReply,
  enosTopics,
  parseEnosMessage,
  type EnosId,
} from "../modules/enos/client.ts";
import { isOtaError } from "../modules/errors.ts";
import { toAppVersion32, parseVersion } from "../modules/verify/version.ts";
import { NodeMqtt } from "../hosts/sim/mqtt.ts";
import { NodeClock } from "../hosts/sim/clock.ts";
import { ManualClock } from "./contract/manual-clock.ts";
import { startBroker, type TestBroker } from "./support/broker.ts";
import { AwsJobsService } from "../cloud/aws-jobs.ts";
import { EnosService } from "../cloud/enos.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function badArgument(f: () => unknown, pattern?: RegExp): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(isOtaError(caught, "bad-argument"), String(caught)).toBe(true);
  if (pattern) expect((caught as Error).message).toMatch(pattern);
}

async function waitFor<T>(probe: () => T | undefined, what: string, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("AWS Jobs messages", () => {
  it("names every topic of a thing", () => {
    const t = jobTopics("dev-1");
    expect(t.notifyNext).toBe("$aws/things/dev-1/jobs/notify-next");
    expect(t.nextGet).toBe("$aws/things/dev-1/jobs/$next/get");
    expect(t.nextGetAccepted).toBe("$aws/things/dev-1/jobs/$next/get/accepted");
    expect(t.nextGetRejected).toBe("$aws/things/dev-1/jobs/$next/get/rejected");
    expect(t.startNext).toBe("$aws/things/dev-1/jobs/start-next");
    expect(t.update("job_1")).toBe("$aws/things/dev-1/jobs/job_1/update");
    expect(t.updateAccepted("job_1")).toBe("$aws/things/dev-1/jobs/job_1/update/accepted");
    expect(t.updateRejectedFilter).toBe("$aws/things/dev-1/jobs/+/update/rejected");
    badArgument(() => jobTopics("a/b"));
    badArgument(() => jobTopics(""));
    badArgument(() => jobTopics("x".repeat(129)));
    jobTopics("x".repeat(128));
    badArgument(() => t.update("$next"));
    badArgument(() => t.update("j".repeat(65)));
  });

  it("builds $next/get, update and start-next payloads exactly", () => {
    expect(nextGetRequest("0:dev-1")).toBe('{"clientToken":"0:dev-1"}');
    badArgument(() => nextGetRequest(""));
    badArgument(() => nextGetRequest("t".repeat(65)), /64/);
    expect(updateRequest({ status: "IN_PROGRESS", statusDetails: receiveDetails(12, 89), clientToken: "t1" })).toBe(
      '{"status":"IN_PROGRESS","statusDetails":{"receive":"12/89"},"clientToken":"t1"}',
    );
    expect(
      updateRequest({
        clientToken: "t2",
        stepTimeoutInMinutes: 10080,
        includeJobDocument: false,
        includeJobExecutionState: true,
        executionNumber: 3,
        expectedVersion: 7,
        statusDetails: { reason: "x" },
        status: "FAILED",
      }),
    ).toBe(
      '{"status":"FAILED","statusDetails":{"reason":"x"},"expectedVersion":7,"executionNumber":3,"includeJobExecutionState":true,"includeJobDocument":false,"stepTimeoutInMinutes":10080,"clientToken":"t2"}',
    );
    expect(updateRequest({ status: "SUCCEEDED", clientToken: "t" })).toBe('{"status":"SUCCEEDED","clientToken":"t"}');
    for (const status of ["QUEUED", "CANCELED", "REMOVED", "TIMED_OUT", "in_progress"]) {
      badArgument(() => updateRequest({ status: status as "FAILED", clientToken: "t" }), /IN_PROGRESS, SUCCEEDED, FAILED or REJECTED/);
    }
    badArgument(() => updateRequest({ status: "FAILED", clientToken: "t", stepTimeoutInMinutes: 0 }));
    badArgument(() => updateRequest({ status: "FAILED", clientToken: "t", stepTimeoutInMinutes: 10081 }));
    badArgument(() => updateRequest({ status: "FAILED", clientToken: "t", expectedVersion: -1 }));
    badArgument(() => updateRequest({ status: "FAILED", clientToken: "t", expectedVersion: 1.5 }));
    expect(startNextRequest({ clientToken: "s", statusDetails: { a: "b" }, stepTimeoutInMinutes: 5 })).toBe(
      '{"statusDetails":{"a":"b"},"stepTimeoutInMinutes":5,"clientToken":"s"}',
    );
  });

  it("keeps statusDetails within AWS's limits", () => {
    const ten = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, "v"]));
    expect(statusDetailsProblem(ten)).toBeUndefined();
    expect(statusDetailsProblem({ ...ten, k10: "v" })).toMatch(/11 entries, at most 10/);
    expect(statusDetailsProblem({ ["k".repeat(128)]: "v" })).toBeUndefined();
    expect(statusDetailsProblem({ ["k".repeat(129)]: "v" })).toMatch(/key/);
    expect(statusDetailsProblem({ "a.b": "v" })).toMatch(/key/);
    expect(statusDetailsProblem({ "": "v" })).toMatch(/key/);
    expect(statusDetailsProblem({ "ns:key_1-x": "v" })).toBeUndefined();
    expect(statusDetailsProblem({ v: "x".repeat(1024) })).toBeUndefined();
    expect(statusDetailsProblem({ v: "x".repeat(1025) })).toMatch(/1025 characters, at most 1024/);
    expect(statusDetailsProblem({ v: "😀".repeat(1024) })).toBeUndefined(); // code points, not UTF-16 units
    expect(statusDetailsProblem({ v: "" })).toMatch(/empty/);
    expect(statusDetailsProblem({ v: "a\u0007b" })).toMatch(/control/);
    expect(statusDetailsProblem({ v: "a\nb" })).toMatch(/control/);
    expect(statusDetailsProblem({ v: "zero\u200bwidth" })).toMatch(/control, format/);
    expect(statusDetailsProblem({ v: "private\ue000" })).toMatch(/control, format/);
    expect(statusDetailsProblem({ v: "Grüße, 設定" })).toBeUndefined();
    expect(statusDetailsProblem({ v: 5 })).toMatch(/must be a string/);
    expect(statusDetailsProblem(["a"])).toMatch(/object/);
    expect(statusDetailsProblem(null)).toMatch(/object/);
    badArgument(() => checkStatusDetails({ v: 1 }));
    badArgument(() => updateRequest({ status: "IN_PROGRESS", statusDetails: { v: "" }, clientToken: "t" }));
    expect(JOBS_LIMITS.maxStatusDetailValueLength).toBe(1024);
  });

  it("writes the FreeRTOS agent's statusDetails", () => {
    expect(receiveDetails(1, 89)).toEqual({ receive: "1/89" });
    badArgument(() => receiveDetails(90, 89));
    const by = toAppVersion32(parseVersion("1.2.3"));
    expect(selfTestDetails("ready", by)).toEqual({ self_test: "ready", updatedBy: "0x01020003" });
    expect(selfTestDetails("active", 0x01020003)).toEqual({ self_test: "active", updatedBy: "0x01020003" });
    badArgument(() => selfTestDetails("ready", "1.2.3"));
    expect(acceptedDetails("1.3.0", "v1.2.3")).toEqual({ reason: "accepted v1.3.0", updatedBy: "v1.2.3" });
    expect(failedWithValueDetails(0x1000000, 5)).toEqual({ reason: "0x01000000: 0x00000005" });
    expect(failedWithValueDetails(-1, 0)).toEqual({ reason: "0xffffffff: 0x00000000" });
    expect(reasonDetails("rejected", 0x1f)).toEqual({ reason: "rejected: 0x0000001f" });
    expect(updateRequest({ status: "IN_PROGRESS", statusDetails: selfTestDetails("ready", by), clientToken: "c" })).toBe(
      '{"status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x01020003"},"clientToken":"c"}',
    );
  });

  it("parses the service's answers", () => {
    // A notify-next as AWS sent it (captured in rustot's tests), timestamps in seconds.
    const observed =
      '{"timestamp":1587471560,"execution":{"jobId":"mini","status":"QUEUED","queuedAt":1587471559,"lastUpdatedAt":1587471559,"versionNumber":1,"executionNumber":1,"jobDocument":{"test_job":{"operation":"test"}}}}';
    expect(parseJobsResponse("$aws/things/dev-1/jobs/notify-next", enc(observed))).toEqual({
      kind: "notify-next",
      thing: "dev-1",
      timestamp: 1587471560,
      execution: {
        jobId: "mini",
        status: "QUEUED",
        queuedAt: 1587471559,
        lastUpdatedAt: 1587471559,
        versionNumber: 1,
        executionNumber: 1,
        jobDocument: { test_job: { operation: "test" } },
      },
    });
    expect(parseJobsResponse("$aws/things/dev-1/jobs/notify-next", '{"timestamp":1}')).toEqual({
      kind: "notify-next",
      thing: "dev-1",
      execution: undefined,
      timestamp: 1,
    });
    expect(parseJobsResponse("$aws/things/dev-1/jobs/$next/get/accepted", '{"clientToken":"c","timestamp":2}')).toEqual({
      kind: "next",
      thing: "dev-1",
      execution: undefined,
      clientToken: "c",
      timestamp: 2,
    });
    const next = parseJobsResponse(
      "$aws/things/dev-1/jobs/$next/get/accepted",
      '{"clientToken":"c","execution":{"jobId":"j1","status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x01000000"},"versionNumber":3,"thingName":"dev-1","approximateSecondsBeforeTimedOut":30}}',
    );
    expect(next).toMatchObject({
      kind: "next",
      execution: { jobId: "j1", status: "IN_PROGRESS", statusDetails: { self_test: "ready", updatedBy: "0x01000000" }, versionNumber: 3, thingName: "dev-1" },
    });
    expect(parseJobsResponse("$aws/things/dev-1/jobs/$next/get/rejected", '{"code":"InvalidRequest","message":"bad","clientToken":"c"}')).toEqual({
      kind: "next-rejected",
      thing: "dev-1",
      code: "InvalidRequest",
      message: "bad",
      clientToken: "c",
    });
    expect(
      parseJobsResponse(
        "$aws/things/dev-1/jobs/j1/update/accepted",
        '{"clientToken":"u","timestamp":3,"executionState":{"status":"SUCCEEDED","statusDetails":{"reason":"ok"},"versionNumber":4},"jobDocument":{"a":1}}',
      ),
    ).toEqual({
      kind: "update-accepted",
      thing: "dev-1",
      jobId: "j1",
      clientToken: "u",
      timestamp: 3,
      executionState: { status: "SUCCEEDED", statusDetails: { reason: "ok" }, versionNumber: 4 },
      jobDocument: { a: 1 },
    });
    expect(
      parseJobsResponse(
        "$aws/things/dev-1/jobs/j1/update/rejected",
        '{"code":"VersionMismatch","message":"m","clientToken":"u","executionState":{"status":"IN_PROGRESS","versionNumber":5}}',
      ),
    ).toEqual({
      kind: "update-rejected",
      thing: "dev-1",
      jobId: "j1",
      code: "VersionMismatch",
      message: "m",
      clientToken: "u",
      executionState: { status: "IN_PROGRESS", versionNumber: 5 },
    });
    expect(parseJobsResponse("$aws/things/dev-1/jobs/start-next/accepted", '{"clientToken":"s"}')).toMatchObject({ kind: "start-next", execution: undefined });
  });

  it("calls malformed answers unknown, with the reason, and never throws", () => {
    const unknown = (topic: string, payload: string | Uint8Array, reason: RegExp) => {
      const r = parseJobsResponse(topic, payload);
      expect(r.kind).toBe("unknown");
      expect((r as Extract<JobsResponse, { kind: "unknown" }>).reason).toMatch(reason);
    };
    const next = "$aws/things/dev-1/jobs/$next/get/accepted";
    unknown(next, "{", /not JSON/);
    unknown(next, "[1]", /not a JSON object/);
    unknown(next, "null", /not a JSON object/);
    unknown(next, new Uint8Array([0x7b, 0xff, 0x7d]), /UTF-8/);
    unknown(next, '{"execution":{"jobId":"j","status":"DONE"}}', /status "DONE"/);
    unknown(next, '{"execution":{"status":"QUEUED"}}', /jobId/);
    unknown(next, '{"execution":{"jobId":"a/b","status":"QUEUED"}}', /jobId/);
    unknown(next, '{"execution":{"jobId":"j","status":"QUEUED","statusDetails":{"n":1}}}', /statusDetails.n is not a string/);
    unknown(next, '{"execution":{"jobId":"j","status":"QUEUED","versionNumber":-1}}', /versionNumber/);
    unknown(next, '{"execution":"j"}', /execution is not an object/);
    unknown(next, '{"clientToken":5}', /clientToken/);
    unknown("$aws/things/dev-1/jobs/$next/get/rejected", '{"message":"no code"}', /code/);
    unknown("$aws/things/dev-1/jobs/j1/update/accepted", '{"executionState":{"status":"NOPE"}}', /executionState.status/);
    unknown("$aws/things/dev-1/jobs/$next/update/accepted", "{}", /job ID/);
    unknown("$aws/things/dev-1/jobs/notify", "{}", /unhandled/);
    unknown("$aws/things/dev-1/shadow/get/accepted", "{}", /not a Jobs topic/);
    unknown("dev-1/jobs/notify-next", "{}", /not a Jobs topic/);
    unknown("$aws/things/bad thing/jobs/notify-next", "{}", /thing name/);
    // Random bytes and random JSON never throw.
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
    const topics = [next, "$aws/things/dev-1/jobs/notify-next", "$aws/things/dev-1/jobs/j/update/rejected", "$aws/things/dev-1/jobs/j/update/accepted"];
    const values = ['"x"', "1", "-1", "null", "[]", "{}", '{"status":"QUEUED"}', '"QUEUED"', "true", "1e400"];
    for (let i = 0; i < 2000; i++) {
      const topic = topics[i % topics.length];
      const bytes = new Uint8Array(Math.floor(rnd() * 40)).map(() => Math.floor(rnd() * 256));
      expect(() => parseJobsResponse(topic, bytes)).not.toThrow();
      const keys = ["execution", "executionState", "code", "message", "clientToken", "timestamp", "jobId", "status", "statusDetails", "versionNumber"];
      const obj = (depth: number): string =>
        "{" +
        keys
          .filter(() => rnd() < 0.4)
          .map((k) => `"${k}":${depth < 2 && rnd() < 0.4 ? obj(depth + 1) : values[Math.floor(rnd() * values.length)]}`)
          .join(",") +
        "}";
      expect(() => parseJobsResponse(topic, obj(0))).not.toThrow();
    }
  });
});

describe("EnOS OTA messages", () => {
  it("names the device's topics", () => {
    expect(enosTopics("pk1", "dk1")).toEqual({
      inform: "/sys/pk1/dk1/ota/device/inform",
      informReply: "/sys/pk1/dk1/ota/device/inform_reply",
      progress: "/sys/pk1/dk1/ota/device/progress",
      progressReply: "/sys/pk1/dk1/ota/device/progress_reply",
      getVersion: "/sys/pk1/dk1/ota/device/getversion",
      getVersionReply: "/sys/pk1/dk1/ota/device/getversion_reply",
      upgrade: "/sys/pk1/dk1/ota/device/upgrade",
      upgradeReply: "/sys/pk1/dk1/ota/device/upgrade_reply",
    });
    badArgument(() => enosTopics("p/k", "dk"));
    badArgument(() => enosTopics("pk", "d+"));
    badArgument(() => enosTopics("", "dk"));
  });

  it("builds requests and replies exactly", () => {
    expect(enosInformRequest("123", "1.0.1")).toBe('{"id":"123","version":"1.0","method":"ota.device.inform","params":{"version":"1.0.1"}}');
    expect(enosInformRequest("1", "v2", "ota.inform")).toBe('{"id":"1","version":"1.0","method":"ota.inform","params":{"version":"v2"}}');
    expect(enosProgressRequest("124", 50, "downloading")).toBe(
      '{"id":"124","version":"1.0","method":"ota.device.progress","params":{"step":"50","desc":"downloading"}}',
    );
    expect(enosProgressRequest("125", ENOS_STEP.verificationFailed, "bad md5")).toBe(
      '{"id":"125","version":"1.0","method":"ota.device.progress","params":{"step":"-3","desc":"bad md5"}}',
    );
    for (const step of [101, -5, 1.5, NaN]) badArgument(() => enosProgressRequest("1", step, ""));
    expect(enosGetVersionRequest("126")).toBe('{"id":"126","version":"1.0","method":"ota.device.getversion","params":{}}');
    expect(enosReply("123", 200)).toBe('{"id":"123","code":200,"data":{}}');
    expect(enosReply(77, 500, "flash full")).toBe('{"id":77,"code":500,"data":{},"message":"flash full"}');
    badArgument(() => enosReply("", 200));
    badArgument(() => enosReply("1", 2.5));
    badArgument(() => enosInformRequest("1", ""));
  });

  it("parses pushes and replies, and calls anything else unknown", () => {
    const push = '{"id":"123","version":"1.0","method":"ota.device.upgrade","params":{"version":"v1.0","sign":"abc","signMethod":"md5","fileUrl":"/1b30/ota/k","fileSize":1024}}';
    expect(parseEnosMessage("/sys/pk/dk/ota/device/upgrade", enc(push))).toEqual({
      kind: "upgrade",
      productKey: "pk",
      deviceKey: "dk",
      id: "123",
      method: "ota.device.upgrade",
      params: { version: "v1.0", sign: "abc", signMethod: "md5", fileUrl: "/1b30/ota/k", fileSize: 1024 },
    });
    expect(parseEnosMessage("/sys/pk/dk/ota/device/upgrade", '{"id":9,"params":"anything"}')).toMatchObject({ kind: "upgrade", id: 9, params: "anything" });
    expect(parseEnosMessage("/sys/pk/dk/ota/device/getversion_reply", '{"id":"5","code":200,"data":[{"version":"v2"}]}')).toEqual({
      kind: "reply",
      operation: "getversion",
      productKey: "pk",
      deviceKey: "dk",
      id: "5",
      code: 200,
      data: [{ version: "v2" }],
      message: undefined,
    });
    expect(parseEnosMessage("/sys/pk/dk/ota/device/inform_reply", '{"code":404,"message":"no such device"}')).toMatchObject({
      kind: "reply",
      operation: "inform",
      id: undefined,
      code: 404,
      message: "no such device",
    });
    const unknown = (topic: string, payload: string | Uint8Array, reason: RegExp) => {
      const r = parseEnosMessage(topic, payload);
      expect(r).toMatchObject({ kind: "unknown" });
      expect((r as { reason: string }).reason).toMatch(reason);
    };
    unknown("/sys/pk/dk/ota/device/upgrade", '{"params":{}}', /id/);
    unknown("/sys/pk/dk/ota/device/upgrade", '{"id":"","params":{}}', /id/);
    unknown("/sys/pk/dk/ota/device/upgrade", '{"id":-1}', /id/);
    unknown("/sys/pk/dk/ota/device/upgrade", "{", /JSON/);
    unknown("/sys/pk/dk/ota/device/upgrade", new Uint8Array([0xc0, 0x80]), /UTF-8/);
    unknown("/sys/pk/dk/ota/device/getversion_reply", '{"id":"1","code":"200"}', /integer code/);
    unknown("/sys/pk/dk/ota/device/getversion_reply", '{"id":{},"code":200}', /id/);
    unknown("/sys/pk/dk/ota/device/inform", '{"id":"1"}', /not a message for the device/);
    unknown("/ota/device/upgrade/pk/dk", "{}", /not an EnOS OTA topic/);
    unknown("/sys/pk/dk/thing/measurepoint/post", "{}", /not an EnOS OTA topic/);
  });
});

describe("over MQTT (aedes)", () => {
  let broker: TestBroker;
  let jobs: AwsJobsService;
  let enos: EnosService;
  let device: NodeMqtt;
  let raw: NodeMqtt;
  let client: AwsJobsClient;
  let slow: AwsJobsClient;
  let slowClock: ManualClock;
  let enosClient: EnosOtaClient;
  let enosClock: ManualClock;
  const notices: JobNotice[] = [];
  const upgrades: { payload: Uint8Array; id: EnosId }[] = [];
  const rawMessages: { topic: string; text: string }[] = [];
  /** Queues one job for one thing. */
  const addJob = (thing: string, jobId: string, document: Record<string, unknown>, options: { queuedAt?: number } = {}) =>
    jobs.createJob({ jobId, document, targets: [thing], ...options });
  const updates = () => jobs.log.filter((e) => e.operation === "update");
  const informs = () => enos.device("pk1", "dk1")?.informs ?? [];
  const progress = () => enos.device("pk1", "dk1")?.progress ?? [];

  beforeAll(async () => {
    broker = await startBroker();
    jobs = new AwsJobsService(broker.aedes);
    await jobs.start();
    enos = new EnosService(broker.aedes);
    await enos.start();
    device = await NodeMqtt.connect(broker.url, { clientId: "jobs-device" });
    raw = await NodeMqtt.connect(broker.url, { clientId: "jobs-raw" });
    client = new AwsJobsClient({ mqtt: device, clock: new NodeClock(), thing: "dev-1", timeoutMs: 3000 });
    slowClock = new ManualClock();
    slow = new AwsJobsClient({ mqtt: device, clock: slowClock, thing: "dev-slow", timeoutMs: 4000 });
    enosClock = new ManualClock();
    enosClient = new EnosOtaClient({ mqtt: device, clock: enosClock, productKey: "pk1", deviceKey: "dk1", timeoutMs: 5000 });
    device.onMessage((topic, payload) => {
      // Each message belongs to at most one of them.
      const owners = [client.handle(topic, payload), slow.handle(topic, payload), enosClient.handle(topic, payload)].filter(Boolean);
      expect(owners.length).toBeLessThanOrEqual(1);
    });
    raw.onMessage((topic, payload) => rawMessages.push({ topic, text: new TextDecoder().decode(payload) }));
    client.onJob((n) => notices.push(n));
    enosClient.onUpgrade((payload, id) => upgrades.push({ payload, id }));
    await client.start();
    await slow.start();
    await enosClient.start();
    await raw.subscribe("$aws/things/raw-1/jobs/#", 1);
  });

  afterAll(async () => {
    await device?.close();
    await raw?.close();
    await jobs?.stop();
    await enos?.stop();
    await broker?.close();
  });

  it("no pending job: an answer without execution", async () => {
    const r = await client.requestNext();
    expect(r).toEqual({ ok: true, execution: undefined });
    expect(notices.at(-1)).toMatchObject({ source: "next", execution: undefined, clientToken: expect.stringMatching(/^xs-ota-/) });
    expect(client.pending).toBe(0);
  });

  it("a new job comes by notify-next, then as the next job with its document", async () => {
    const before = notices.length;
    await addJob("dev-1", "job-1", { afr_ota: { streamname: "s1" } });
    const notice = await waitFor(() => notices.slice(before).find((n) => n.source === "notify-next"), "notify-next");
    expect(notice.execution).toMatchObject({ jobId: "job-1", status: "QUEUED", versionNumber: 1, executionNumber: 1, jobDocument: { afr_ota: { streamname: "s1" } } });
    expect(notice.problem).toBeUndefined();
    // The raw message comes along, for the document parsers.
    expect(JSON.parse(new TextDecoder().decode(notice.payload))).toMatchObject({ timestamp: expect.any(Number), execution: { jobId: "job-1" } });
    const r = await client.requestNext();
    expect(r.ok && r.execution).toMatchObject({ jobId: "job-1", status: "QUEUED", versionNumber: 1, jobDocument: { afr_ota: { streamname: "s1" } } });
  });

  it("updates are accepted and change the execution", async () => {
    const r = await client.update("job-1", "IN_PROGRESS", selfTestDetails("ready", "0x01000000"), { includeJobExecutionState: true, expectedVersion: 1 });
    expect(r).toEqual({ accepted: true, state: { status: "IN_PROGRESS", statusDetails: { self_test: "ready", updatedBy: "0x01000000" }, versionNumber: 2 } });
    const e = jobs.execution("dev-1", "job-1");
    expect(e).toMatchObject({ status: "IN_PROGRESS", versionNumber: 2, statusDetails: { self_test: "ready", updatedBy: "0x01000000" } });
    expect(e?.startedAt).toBeTypeOf("number");
    // Without statusDetails they stay; without includeJobExecutionState no state comes back.
    expect(await client.update("job-1", "IN_PROGRESS", undefined, { qos: 0 })).toEqual({ accepted: true });
    expect(jobs.execution("dev-1", "job-1")?.statusDetails).toEqual({ self_test: "ready", updatedBy: "0x01000000" });
    const last = updates().at(-1);
    expect(last?.payload).toMatch(/^\{"status":"IN_PROGRESS","clientToken":"xs-ota-[0-9a-z]+-\d+"\}$/);
  });

  it("a stale expectedVersion is refused with VersionMismatch and the current state", async () => {
    const r = await client.update("job-1", "IN_PROGRESS", receiveDetails(1, 2), { expectedVersion: 1 });
    expect(r).toMatchObject({ accepted: false, code: "VersionMismatch", state: { status: "IN_PROGRESS", versionNumber: 3 } });
    expect(jobs.execution("dev-1", "job-1")?.versionNumber).toBe(3);
  });

  it("an unknown job is ResourceNotFound", async () => {
    expect(await client.update("no-such-job", "FAILED")).toMatchObject({ accepted: false, code: "ResourceNotFound" });
  });

  it("after SUCCEEDED the job is gone from notify-next and further updates are InvalidStateTransition", async () => {
    await addJob("dev-1", "job-2", { n: 2 });
    await jobs.idle();
    const before = notices.length;
    const done = await client.update("job-1", "SUCCEEDED", acceptedDetails("1.1.0", "1.0.0"), { includeJobExecutionState: true });
    expect(done).toEqual({ accepted: true, state: { status: "SUCCEEDED", statusDetails: { reason: "accepted v1.1.0", updatedBy: "v1.0.0" }, versionNumber: 4 } });
    const notice = await waitFor(() => notices.slice(before).find((n) => n.source === "notify-next"), "notify-next after SUCCEEDED");
    expect(notice.execution).toMatchObject({ jobId: "job-2", status: "QUEUED" });
    const again = await client.update("job-1", "IN_PROGRESS");
    expect(again).toMatchObject({ accepted: false, code: "InvalidStateTransition", state: { status: "SUCCEEDED", versionNumber: 4 } });
    // Finishing the last job: notify-next without an execution.
    const n2 = notices.length;
    expect(await client.update("job-2", "REJECTED", reasonDetails("rejected", 3))).toEqual({ accepted: true });
    const none = await waitFor(() => notices.slice(n2).find((n) => n.source === "notify-next"), "empty notify-next");
    expect(none.execution).toBeUndefined();
    expect((await client.requestNext())).toEqual({ ok: true, execution: undefined });
  });

  it("IN_PROGRESS executions come before older QUEUED ones", async () => {
    await addJob("dev-2", "old", {}, { queuedAt: 100 });
    await addJob("dev-2", "newer", {}, { queuedAt: 200 });
    // The device of dev-2 starts "newer" (the service's own way to an IN_PROGRESS execution).
    await raw.publish("$aws/things/dev-2/jobs/newer/update", '{"status":"IN_PROGRESS"}', 1);
    await waitFor(() => (jobs.execution("dev-2", "newer")?.status === "IN_PROGRESS" ? true : undefined), "newer IN_PROGRESS");
    expect(jobs.next("dev-2")?.jobId).toBe("newer");
    await addJob("dev-2", "oldest", {}, { queuedAt: 50 });
    expect(jobs.next("dev-2")?.jobId).toBe("newer");
    await jobs.cancelJob("newer", { force: true });
    expect(jobs.next("dev-2")?.jobId).toBe("oldest");
  });

  it("refuses local mistakes before sending anything", async () => {
    const sent = jobs.log.length;
    await expect(client.update("job-1", "CANCELED" as "FAILED")).rejects.toSatisfy((e) => isOtaError(e, "bad-argument"));
    await expect(client.update("job-1", "FAILED", { bad: "" })).rejects.toSatisfy((e) => isOtaError(e, "bad-argument"));
    await expect(client.update("a/b", "FAILED")).rejects.toSatisfy((e) => isOtaError(e, "bad-argument"));
    await jobs.idle();
    expect(jobs.log.length).toBe(sent);
  });

  it("answers malformed requests with AWS's errors and keeps working", async () => {
    await addJob("raw-1", "r1", { x: 1 });
    const answer = async (topic: string, payload: string | Uint8Array, on: string) => {
      const from = rawMessages.length;
      await raw.publish(topic, payload, 1);
      return JSON.parse((await waitFor(() => rawMessages.slice(from).find((m) => m.topic === on), on)).text) as Record<string, unknown>;
    };
    const base = "$aws/things/raw-1/jobs";
    expect(await answer(`${base}/$next/get`, "not json", `${base}/$next/get/rejected`)).toMatchObject({ code: "InvalidJson" });
    expect(await answer(`${base}/$next/get`, new Uint8Array([0x7b, 0xff, 0x7d]), `${base}/$next/get/rejected`)).toMatchObject({ code: "InvalidJson" });
    expect(await answer(`${base}/$next/get`, "[]", `${base}/$next/get/rejected`)).toMatchObject({ code: "InvalidRequest" });
    expect(await answer(`${base}/$next/get`, `{"clientToken":"${"x".repeat(65)}"}`, `${base}/$next/get/rejected`)).toMatchObject({ code: "InvalidRequest" });
    expect(await answer(`${base}/r1/update`, '{"status":5,"clientToken":"k"}', `${base}/r1/update/rejected`)).toMatchObject({
      code: "InvalidRequest",
      clientToken: "k",
    });
    expect(await answer(`${base}/r1/update`, '{"status":"IN_PROGRESS","statusDetails":{"a":1}}', `${base}/r1/update/rejected`)).toMatchObject({
      code: "InvalidRequest",
    });
    expect(await answer(`${base}/r1/update`, '{"status":"DONE"}', `${base}/r1/update/rejected`)).toMatchObject({ code: "InvalidRequest" });
    expect(await answer(`${base}/r1/update`, '{"status":"CANCELED"}', `${base}/r1/update/rejected`)).toMatchObject({
      code: "InvalidStateTransition",
      executionState: { status: "QUEUED", versionNumber: 1 },
    });
    expect(await answer(`${base}/$next/update`, '{"status":"FAILED"}', `${base}/$next/update/rejected`)).toMatchObject({ code: "InvalidTopic" });
    const ok = await answer(`${base}/$next/get`, '{"clientToken":"fine","includeJobDocument":false}', `${base}/$next/get/accepted`);
    expect(ok).toMatchObject({ clientToken: "fine", execution: { jobId: "r1", status: "QUEUED" } });
    expect((ok["execution"] as Record<string, unknown>)["jobDocument"]).toBeUndefined();
    expect(jobs.lastError).toBeUndefined();
  });

  it("an unanswered update resolves as Timeout when the clock says so", async () => {
    await addJob("dev-slow", "s1", {});
    jobs.onRequest = (r) => ({ drop: r.thing === "dev-slow" });
    try {
      const logged = jobs.log.length;
      const result = slow.update("s1", "IN_PROGRESS");
      await waitFor(() => jobs.log.length > logged || undefined, "the request to reach the responder");
      await jobs.idle();
      expect(slow.pending).toBe(1);
      expect(slowClock.pending).toBe(1);
      expect(slowClock.fireNext()).toBe(true);
      expect(await result).toEqual({ accepted: false, code: "Timeout", message: "no answer to the update of job s1 within 4000 ms" });
      expect(slow.pending).toBe(0);
      expect(jobs.log.at(-1)?.outcome).toBe("dropped");
      const next = slow.requestNext();
      slowClock.fireNext();
      expect(await next).toMatchObject({ ok: false, code: "Timeout" });
    } finally {
      jobs.onRequest = undefined;
    }
    // Answered again once the service is back; the timer of an answered request is cleared.
    const r = await slow.update("s1", "IN_PROGRESS");
    expect(r).toEqual({ accepted: true });
    expect(slowClock.pending).toBe(0);
  });

  it("ignores other things' topics and counts its own malformed messages", async () => {
    expect(client.handle("$aws/things/dev-2/jobs/notify-next", enc("{}"))).toBe(false);
    expect(client.handle("/sys/pk1/dk1/ota/device/upgrade", enc("{}"))).toBe(false);
    const ignored = client.ignored;
    const before = notices.length;
    expect(client.handle("$aws/things/dev-1/jobs/notify-next", enc("garbage"))).toBe(true);
    // A malformed offer still reaches onJob, with the reason and the bytes, and no execution.
    expect(notices.slice(before)).toEqual([{ source: "notify-next", execution: undefined, payload: enc("garbage"), problem: "payload is not JSON" }]);
    expect(client.handle("$aws/things/dev-1/jobs/j9/update/accepted", enc('{"clientToken":"nobody"}'))).toBe(true);
    expect(client.ignored).toBe(ignored + 2);
    expect(client.lastIgnored).toMatch(/no pending update/);
  });

  it("EnOS: inform and progress reach the cloud", async () => {
    await enosClient.inform("1.0.0");
    await enosClient.progress(0, "start");
    await enosClient.progress(50, "downloading");
    await enosClient.progress(ENOS_STEP.downloadFailed, "connection reset");
    await enos.idle();
    await waitFor(() => progress().length >= 3 || undefined, "progress");
    expect(enos.devices.map((d) => [d.productKey, d.deviceKey])).toEqual([["pk1", "dk1"]]);
    expect(informs()).toEqual([{ id: expect.stringMatching(/^\d+$/), method: "ota.device.inform", version: "1.0.0" }]);
    expect(progress().map((p) => [p.rawStep, p.desc, p.method])).toEqual([
      ["0", "start", "ota.device.progress"],
      ["50", "downloading", "ota.device.progress"],
      ["-2", "connection reset", "ota.device.progress"],
    ]);
    const ids = [...informs(), ...progress()].map((m) => Number(m.id));
    expect(new Set(ids).size).toBe(4);
    // The cloud's replies are consumed.
    await waitFor(() => (enosClient.lastReply?.operation === "progress" ? true : undefined), "progress_reply");
    await expect(enosClient.progress(101, "")).rejects.toSatisfy((e) => isOtaError(e, "bad-argument"));
  });

  it("EnOS: getversion resolves with the cloud's list, or fails clearly", async () => {
    const list = [{ version: "v1.1", sign: "0123", signMethod: "md5", fileUrl: "/f/1", fileSize: 1024 }];
    enos.setGetVersionAnswer("pk1", "dk1", list);
    expect(await enosClient.getVersions()).toEqual(list);
    expect(enos.device("pk1", "dk1")?.getVersionLog.at(-1)?.method).toBe("ota.device.getversion");
    expect(enosClock.pending).toBe(0);
    enos.setGetVersionAnswer("pk1", "dk1", { code: 404, message: "no firmware" });
    await expect(enosClient.getVersions()).rejects.toSatisfy((e) => isOtaError(e, "http-status") && /404: no firmware/.test((e as Error).message));
    enos.setGetVersionAnswer("pk1", "dk1", "silent");
    try {
      const requests = () => enos.device("pk1", "dk1")?.getVersionRequests ?? 0;
      const before = requests();
      const pending = enosClient.getVersions();
      await waitFor(() => requests() > before || undefined, "getversion request");
      expect(enosClock.fireNext()).toBe(true);
      await expect(pending).rejects.toSatisfy((e) => isOtaError(e, "timeout"));
    } finally {
      enos.setGetVersionAnswer("pk1", "dk1", undefined);
    }
  });

  it("EnOS: an upgrade push reaches onUpgrade with its id, and the reply reaches the cloud", async () => {
    const params = enos.addFirmware("pk1", { version: "v2.0", file: new Uint8Array(4096).fill(7), fileName: "fw" });
    expect(params).toEqual({ version: "v2.0", sign: expect.stringMatching(/^[0-9a-f]{32}$/), signMethod: "md5", fileUrl: "/pk1/ota/fw", fileSize: 4096 });
    const replied = enos.pushUpgrade("pk1", "dk1", "v2.0", { id: "777" });
    const push = await waitFor(() => upgrades.at(-1), "upgrade push");
    expect(push.id).toBe("777");
    expect(JSON.parse(new TextDecoder().decode(push.payload))).toEqual({ id: "777", version: "1.0", method: "ota.device.upgrade", params });
    await enosClient.reply(push.id, 200);
    expect(await replied).toEqual({ id: "777", code: 200, data: {} });
    // A numeric id is echoed as a number.
    const second = enos.pushUpgrade("pk1", "dk1", "v2.0", { id: 42 });
    const p2 = await waitFor(() => (upgrades.at(-1)?.id === 42 ? upgrades.at(-1) : undefined), "second push");
    await enosClient.reply(p2.id, 500, "not enough space");
    expect(await second).toEqual({ id: 42, code: 500, data: {}, message: "not enough space" });
    expect(enos.malformed).toEqual([]);
  });
});
