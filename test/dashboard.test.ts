/**
 * The dashboard of `xs-ota cloud` (cloud/dashboard.ts): the state it derives from jobs and
 * devices, the escaping of what it puts in the page, the terminal lines, and the page itself in
 * a real headless Chromium, following a simulated device's update live over /events.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";
import { connectAsync } from "mqtt";
import { changeLines, dashboardPage, dashboardState, DASHBOARD_SCRIPT, escapeHtml, jsonForScript, receiveProgress, versionOf, type DashboardOffer, type DashboardState } from "../cloud/dashboard.ts";
import type { JobDescription, JobExecutionRecord } from "../cloud/aws-jobs.ts";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";
import { buildFirmware, DEMO_APP } from "../hosts/sim/firmware.ts";
import { flashDevice } from "../hosts/sim/board.ts";
import { SimulatedDevice } from "../hosts/sim/device.ts";
import { writeSigningKeys } from "../cli/signing.ts";

function execution(status: JobExecutionRecord["status"], statusDetails: Record<string, string> | undefined, at: number, jobId = "fw-1", thing = "dev-1"): JobExecutionRecord {
  return { jobId, thingName: thing, status, ...(statusDetails ? { statusDetails } : {}), versionNumber: 2, executionNumber: 1, queuedAt: 100, lastUpdatedAt: at, sequence: 0 };
}

function job(executions: JobExecutionRecord[], jobId = "fw-1"): JobDescription {
  return {
    job: { jobId, document: { afr_ota: { protocols: ["MQTT"], streamname: jobId, files: [] } }, targets: executions.map((e) => e.thingName), status: "IN_PROGRESS", createdAt: 100, lastUpdatedAt: 100, jobProcessDetails: {} },
    executions,
  };
}

const offers = new Map<string, DashboardOffer>([["fw-1", { jobId: "fw-1", format: "aws", protocol: "mqtt", version: "1.0.1", targets: ["dev-1"] }]]);

function deviceAfter(...executions: JobExecutionRecord[]) {
  const state = dashboardState({ now: 200_000, jobs: [job(executions)], offers, enosDevices: [], seen: new Map() });
  return { device: state.devices[0], execution: state.jobs[0]?.executions[0] };
}

describe("the dashboard's state, derived from what the cloud sees", () => {
  it("follows an AWS execution: queued, downloading, rebooting on the old version, self-testing the new one, updated", () => {
    expect(deviceAfter(execution("QUEUED", undefined, 100)).device).toMatchObject({ thing: "dev-1", cloud: "aws", state: "queued" });
    expect(deviceAfter(execution("QUEUED", undefined, 100)).device?.version).toBeUndefined();
    const downloading = deviceAfter(execution("IN_PROGRESS", { receive: "12/89" }, 101));
    expect(downloading.device?.state).toBe("downloading");
    expect(downloading.execution?.progress).toEqual({ done: 12, total: 89, percent: 13, unit: "bytes" });
    expect(deviceAfter(execution("IN_PROGRESS", { self_test: "ready", updatedBy: "0x01000000" }, 102)).device).toMatchObject({ state: "rebooting", version: "1.0.0" });
    expect(deviceAfter(execution("IN_PROGRESS", { self_test: "active", updatedBy: "0x01000000" }, 103)).device).toMatchObject({ state: "self-testing", version: "1.0.1" });
    const done = deviceAfter(execution("SUCCEEDED", { reason: "accepted v1.0.1", updatedBy: "v1.0.0" }, 104));
    expect(done.device).toMatchObject({ state: "updated", version: "1.0.1" });
    expect(done.device?.slot).toBeUndefined();
    expect(done.execution).toMatchObject({ status: "SUCCEEDED", reason: "accepted v1.0.1" });
  });

  it("a rollback reported by the old image: rolled back, on the version it ran before", () => {
    const d = deviceAfter(execution("FAILED", { reason: "boot/rolled-back: the trial boot of the new image in ota_1 was interrupted twice", updatedBy: "0x01000000" }, 105));
    expect(d.device).toMatchObject({ state: "rolled back", version: "1.0.0" });
    expect(d.execution?.reason).toMatch(/^boot\/rolled-back/);
  });

  it("the newest execution of a device decides its state; an earlier success its version", () => {
    const { device } = deviceAfter(execution("SUCCEEDED", { reason: "accepted v1.0.1", updatedBy: "v1.0.0" }, 104), execution("QUEUED", undefined, 110, "fw-2"));
    expect(device).toMatchObject({ state: "queued", version: "1.0.1" });
  });

  it("EnOS: informs give the version, progress steps the percentage, the offered version informed is SUCCEEDED", () => {
    const enosOffers = new Map<string, DashboardOffer>([["e-1", { jobId: "e-1", format: "enos", protocol: "http", version: "1.0.1", targets: ["dk"], productKey: "pk", createdAt: 5 }]]);
    const record = { productKey: "pk", deviceKey: "dk", version: "1.0.0", informs: [], progress: [{ id: 1, method: "m", rawStep: "40", step: 40, desc: "downloading" }], getVersionRequests: 1, getVersionLog: [] };
    const s = dashboardState({ now: 10, jobs: [], offers: enosOffers, enosDevices: [record], seen: new Map([["dk", { lastSeen: 9, cloud: "enos" }]]) });
    expect(s.devices).toEqual([{ thing: "dk", cloud: "enos", version: "1.0.0", state: "downloading", lastSeen: 9 }]);
    expect(s.jobs[0]).toMatchObject({ jobId: "e-1", format: "enos", createdAt: 5, status: "OFFERED", executions: [{ thing: "dk", status: "IN_PROGRESS", progress: { percent: 40, unit: "%" } }] });
    const after = dashboardState({ now: 10, jobs: [], offers: enosOffers, enosDevices: [{ ...record, version: "1.0.1" }], seen: new Map() });
    expect(after.jobs[0]).toMatchObject({ status: "COMPLETED", executions: [{ status: "SUCCEEDED" }] });
    expect(after.devices[0]).toMatchObject({ state: "updated", version: "1.0.1" });
  });

  it("versions and progress as devices write them", () => {
    expect(versionOf("0x01020003")).toBe("1.2.3");
    expect(versionOf("0x00000000")).toBeUndefined();
    expect(versionOf("v1.0.1")).toBe("1.0.1");
    expect(receiveProgress("89/89")?.percent).toBe(100);
    expect(receiveProgress("3/0")).toBeUndefined();
    expect(receiveProgress("a lot")).toBeUndefined();
  });
});

describe("escaping what goes into the page", () => {
  const hostile = `<img src=x onerror="alert(1)">&'`;
  // The page's own script, run here as the browser runs it.
  const lib = new Function(`${DASHBOARD_SCRIPT}; return { esc, renderDevices, renderJobs };`)() as {
    esc: (v: unknown) => string;
    renderDevices: (s: DashboardState, now: number) => string;
    renderJobs: (s: DashboardState) => string;
  };
  const state: DashboardState = {
    now: 1000,
    devices: [{ thing: hostile, cloud: "mqtt", state: "idle", lastSeen: 0, connected: true }],
    jobs: [{ jobId: "j", format: "aws", protocol: "http", status: "IN_PROGRESS", executions: [{ thing: hostile, status: "FAILED", reason: "</td><script>x()</script>" }] }],
  };

  it("escapeHtml and the script's esc turn the five markup characters into entities", () => {
    expect(escapeHtml(hostile)).toBe("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;");
    expect(lib.esc(hostile)).toBe(escapeHtml(hostile));
  });

  it("no thing name or reason reaches the tables as markup", () => {
    const html = lib.renderDevices(state, 1000) + lib.renderJobs(state);
    expect(html).not.toContain("<img");
    expect(html).not.toContain("<script");
    expect(html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    // A failure's reason is marked as one; other details (accepted v1.0.1) are only notes.
    expect(html).toContain('<div class="reason">&lt;/td&gt;&lt;script&gt;');
    expect(lib.renderDevices(state, 61_000)).toContain("1 min ago");
  });

  it("the state embedded in the page cannot close its script element", () => {
    const page = dashboardPage(state);
    expect(page).not.toContain("</script><script>x()");
    expect(jsonForScript({ a: "</script>" })).toBe('{"a":"\\u003c/script>"}');
    expect(JSON.parse(jsonForScript({ a: "</script>" }))).toEqual({ a: "</script>" });
  });
});

describe("the terminal's lines", () => {
  const at = (now: number, ...executions: JobExecutionRecord[]) => dashboardState({ now, jobs: [job(executions)], offers, enosDevices: [], seen: new Map() });

  it("one line per status change, progress at most per 10 % or per second", () => {
    const printed = new Map<string, { percent: number; at: number }>();
    const lines: string[] = [];
    let before = dashboardState({ now: 0, jobs: [], offers, enosDevices: [], seen: new Map() });
    const step = (s: DashboardState) => {
      lines.push(...changeLines(before, s, printed));
      before = s;
    };
    step(at(0, execution("QUEUED", undefined, 100)));
    step(at(10, execution("IN_PROGRESS", { receive: "1/100" }, 101)));
    for (let i = 2; i <= 100; i++) step(at(10 + i, execution("IN_PROGRESS", { receive: `${i}/100` }, 101)));
    step(at(2000, execution("SUCCEEDED", { reason: "accepted v1.0.1", updatedBy: "v1.0.0" }, 102)));
    expect(lines[0]).toBe("job fw-1 created: 1.0.1 (aws mqtt) for dev-1");
    expect(lines[1]).toBe("job fw-1: dev-1 IN_PROGRESS 1/100");
    expect(lines.filter((l) => / IN_PROGRESS \d+\/100$/.test(l))).toEqual([1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100].map((n) => `job fw-1: dev-1 IN_PROGRESS ${n}/100`));
    expect(lines.slice(-2)).toEqual(["dev-1 runs 1.0.1", "job fw-1: dev-1 SUCCEEDED accepted v1.0.1"]);
  });
});

describe("the dashboard in a headless Chromium", () => {
  const executablePath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
  const work = mkdtempSync(join(tmpdir(), "xs-ota-dashboard-"));
  const { publicPem, privatePath } = writeSigningKeys(work);
  const lines: string[] = [];
  let cloud: Cloud;
  let browser: Browser | undefined;
  let device: SimulatedDevice | undefined;

  beforeAll(async () => {
    cloud = await startCloud({ dataDir: join(work, "cloud"), httpsPort: 0, controlPort: 0, mqttPort: 0, mqttsPort: 0, onEvent: (l) => lines.push(l) });
  });

  afterAll(async () => {
    await browser?.close();
    await device?.stop();
    await cloud?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("GET / is the page, /api/state and /events the state", async () => {
    const page = await fetch(`${cloud.urls.control}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain("<h2>Devices</h2>");
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
    const state = (await (await fetch(`${cloud.urls.control}/api/state`)).json()) as DashboardState;
    expect(state).toMatchObject({ devices: [], jobs: [] });
    const controller = new AbortController();
    const events = await fetch(`${cloud.urls.control}/events`, { signal: controller.signal });
    expect(events.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = events.body?.getReader();
    const first = await reader?.read();
    expect(new TextDecoder().decode(first?.value)).toMatch(/^retry: 1000\nevent: state\ndata: \{"now":\d+,"devices":\[\],"jobs":\[\]\}\n\n$/);
    controller.abort();
  });

  it("follows a device from 1.0.0 through its job to SUCCEEDED on 1.0.1, live, without a reload", async () => {
    if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: .ci/run installs it (apt-get install chromium), or set CHROMIUM_PATH`);
    const v100 = join(work, "1.0.0.bin");
    const v101 = join(work, "1.0.1.bin");
    const [launched] = await Promise.all([
      puppeteer.launch({ executablePath, headless: true, args: ["--no-sandbox"] }),
      buildFirmware({ entry: DEMO_APP.passes, version: "1.0.0", out: v100 }),
      buildFirmware({ entry: DEMO_APP.passes, version: "1.0.1", out: v101 }),
    ]);
    browser = launched;
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${cloud.urls.control}/`);
    // Page code as strings: this project's TypeScript has no DOM types (nothing else runs in a browser).
    const text = (selector: string) => `document.querySelector(${JSON.stringify(selector)})?.textContent`;
    const deviceCell = (cell: string) => text(`#devices tr[data-thing="dash-1"] td.${cell}`);
    await page.waitForFunction(`${text("#live")} === "live"`);
    // Every version the device's row shows, in order: the 1.0.0 the page showed may be gone
    // by the time a check would look (the old image reports it only just before its reboot).
    await page.evaluate(`window.versions = [];
      new MutationObserver(() => {
        const v = ${deviceCell("version")};
        if (v != null && window.versions.at(-1) !== v) window.versions.push(v);
      }).observe(document.body, { childList: true, subtree: true, characterData: true });`);

    // A client id is user data: it must show as text.
    const hostile = await connectAsync(cloud.urls.mqtt, { clientId: "<b>bold</b>" });
    await page.waitForFunction(`[...document.querySelectorAll("#devices td.thing")].some((td) => td.textContent.startsWith("<b>bold</b>"))`);
    expect(await page.evaluate(`document.querySelectorAll("#devices b").length`)).toBe(0);
    await hostile.endAsync();

    const dir = join(work, "dash-1");
    flashDevice(dir, new Uint8Array(readFileSync(v100)));
    device = new SimulatedDevice({ dir, thing: "dash-1", brokerUrl: cloud.urls.mqtt, keys: { [SIGNER_LABEL]: publicPem }, config: { ca: cloud.caCert, progressInterval: 16 * 1024 }, crashDelay: 50 });
    await device.start();
    await page.waitForFunction(`${deviceCell("thing")}?.includes("●") === true`);

    const r = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ thing: "dash-1", file: v101, key: privatePath, protocol: "http", jobId: "dash-job" }) });
    expect(r.status, await r.clone().text()).toBe(201);
    await page.waitForFunction(`${text('#jobs tr[data-job="dash-job"] td.status')} === "SUCCEEDED"`, { timeout: 20_000 });
    await page.waitForFunction(`${deviceCell("version")} === "1.0.1"`);
    const row = (await page.evaluate(`[...document.querySelectorAll('#devices tr[data-thing="dash-1"] td')].map((td) => td.textContent)`)) as string[];
    expect(row.slice(1, 4)).toEqual(["1.0.1", "—", "updated"]);
    const versions = (await page.evaluate("window.versions")) as string[];
    expect(versions.indexOf("1.0.0")).toBeGreaterThan(-1);
    expect(versions.indexOf("1.0.0")).toBeLessThan(versions.lastIndexOf("1.0.1"));
    expect(await page.evaluate(text('#jobs tr[data-job="dash-job"]'))).toMatch(/aws \/ http/);
    expect(errors).toEqual([]);

    expect(lines).toContain("dash-1 connected");
    expect(lines).toContain("job dash-job created: 1.0.1 (aws http) for dash-1");
    expect(lines.some((l) => /^job dash-job: dash-1 IN_PROGRESS \d+\/\d+$/.test(l))).toBe(true);
    expect(lines).toContain("job dash-job: dash-1 SUCCEEDED accepted v1.0.1");
    // Thinned: far fewer progress lines than the device's reports.
    const reports = cloud.jobs.log.filter((l) => l.thing === "dash-1" && l.operation === "update" && /"receive"/.test(l.payload)).length;
    expect(lines.filter((l) => /IN_PROGRESS \d+\/\d+$/.test(l)).length).toBeLessThanOrEqual(Math.max(11, reports));
  }, 40_000);
});
