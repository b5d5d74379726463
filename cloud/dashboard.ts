/**
 * The live dashboard of `xs-ota cloud`, on the control port (cloud/server.ts):
 *
 *   GET /            one self-contained HTML page (inline CSS and JS, no CDN, no build step): a
 *                    Devices table and a Jobs table, kept live from /events without reloading
 *   GET /events      text/event-stream: `event: state` with the whole DashboardState on connect,
 *                    then again whenever a job or execution changes or a device is heard from
 *                    (changes in one turn of the event loop are sent once)
 *   GET /api/state   the same DashboardState as JSON
 *
 * Everything shown is derived from what the cloud itself sees (`dashboardState`, a pure
 * function): thing names from Jobs requests, job targets, EnOS messages and broker connections
 * (the embedded broker only); the running version from AWS statusDetails (SUCCEEDED
 * {reason: "accepted vX"}, self_test's updatedBy 0x%08x = the version before the update,
 * modules/aws/channel.ts) and EnOS informs. AWS's agent reports no version before its first
 * self-test, so an AWS device never updated shows "—" until then. No device reports its slot,
 * so slot is present only when something says it (nothing does today).
 *
 * `onEvent` gets one readable line per event (`job fw-1: dev-1 IN_PROGRESS 12/89`), found by
 * comparing successive states, so AWS and EnOS jobs read the same; progress lines are thinned to
 * one per execution per 10 % or per second.
 */
import type { ServerResponse } from "node:http";
import type { JobDescription, JobExecutionRecord } from "./aws-jobs.ts";
import type { EnosDeviceRecord } from "./enos.ts";

export interface DashboardProgress {
  done: number;
  total: number;
  /** 0..100, rounded down. */
  percent: number;
  /** "bytes" for AWS's receive, "%" for an EnOS step. */
  unit: "bytes" | "%";
}

export interface DashboardExecution {
  thing: string;
  status: string;
  progress?: DashboardProgress;
  /** Why it failed, or what the device says it is doing (self_test ready/active). */
  reason?: string;
  /** Milliseconds since the epoch. */
  lastUpdatedAt?: number;
}

export interface DashboardJob {
  jobId: string;
  /** aws, nrf, zerynth or enos. */
  format: string;
  /** http or mqtt. */
  protocol: string;
  /** The firmware version the job offers, when known. */
  version?: string;
  /** Milliseconds since the epoch, when known. */
  createdAt?: number;
  /** IN_PROGRESS, COMPLETED, CANCELED; "OFFERED" for an EnOS offer. */
  status: string;
  executions: DashboardExecution[];
}

export interface DashboardDevice {
  thing: string;
  /** aws (Jobs), enos, or mqtt (only a broker connection seen so far). */
  cloud: "aws" | "enos" | "mqtt";
  version?: string;
  slot?: string;
  /** idle, queued, downloading, rebooting, self-testing, updated, rolled back, failed, rejected, ... */
  state: string;
  /** Milliseconds since the epoch; absent: never heard from (a job target only). */
  lastSeen?: number;
  /** Whether a broker connection under this client id is open (embedded broker only). */
  connected?: boolean;
}

export interface DashboardState {
  /** The cloud's clock (ms) when the state was made, so that the page's relative times do not depend on the browser's clock. */
  now: number;
  devices: DashboardDevice[];
  jobs: DashboardJob[];
}

/** How a job was offered (cloud/server.ts's offer record, or what a job's document says). */
export interface DashboardOffer {
  jobId: string;
  format: string;
  protocol: string;
  version?: string;
  targets: string[];
  productKey?: string;
  /** Milliseconds since the epoch (EnOS offers: when this cloud made them). */
  createdAt?: number;
}

/** What the cloud heard of one device outside the Jobs executions. */
export interface SeenDevice {
  lastSeen: number;
  cloud: "aws" | "enos" | "mqtt";
  connected?: boolean;
}

export interface DashboardInput {
  now: number;
  /** AWS jobs with their executions (cloud/aws-jobs.ts describeJob). */
  jobs: JobDescription[];
  /** By job ID: every offer (AWS ones give format, protocol and version; EnOS ones are jobs of their own). */
  offers: ReadonlyMap<string, DashboardOffer>;
  enosDevices: EnosDeviceRecord[];
  seen: ReadonlyMap<string, SeenDevice>;
}

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"]);

/** `accepted v1.0.1` -> 1.0.1 (modules/aws/jobs.ts acceptedDetails). */
function acceptedVersion(reason: string | undefined): string | undefined {
  const m = reason === undefined ? null : /^accepted v?(\S+)$/.exec(reason);
  return m?.[1];
}

/** AWS's 32-bit application version (8.8.16 bits, 0x%08x) or a "vX" string -> "1.0.0". */
export function versionOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const hex = /^0x([0-9a-fA-F]{8})$/.exec(text);
  if (hex) {
    const n = parseInt(hex[1] ?? "0", 16);
    // 0x00000000 is what the agent sends when the version did not fit: unknown, not 0.0.0.
    return n === 0 ? undefined : `${n >>> 24}.${(n >>> 16) & 0xff}.${n & 0xffff}`;
  }
  const v = /^v?([0-9A-Za-z.+-]{1,64})$/.exec(text);
  return v?.[1];
}

/** AWS's `receive: "12/89"` -> a percentage. */
export function receiveProgress(receive: string | undefined): DashboardProgress | undefined {
  const m = receive === undefined ? null : /^(\d+)\/(\d+)$/.exec(receive);
  if (!m) return undefined;
  const done = Number(m[1]);
  const total = Number(m[2]);
  if (total <= 0) return undefined;
  return { done, total, percent: Math.min(100, Math.floor((done * 100) / total)), unit: "bytes" };
}

function executionView(e: JobExecutionRecord): DashboardExecution {
  const d = e.statusDetails ?? {};
  const view: DashboardExecution = { thing: e.thingName, status: e.status, lastUpdatedAt: e.lastUpdatedAt * 1000 };
  const progress = receiveProgress(d["receive"]);
  if (progress !== undefined) view.progress = progress;
  if (d["self_test"] !== undefined) view.reason = `self_test ${d["self_test"]}`;
  else if (d["reason"] !== undefined) view.reason = d["reason"];
  return view;
}

/** The device's state and running version after each of its executions, oldest first. */
function awsDevice(executions: JobExecutionRecord[], offers: ReadonlyMap<string, DashboardOffer>): { state: string; version?: string } {
  let version: string | undefined;
  let state = "idle";
  const ordered = [...executions].sort((a, b) => a.lastUpdatedAt - b.lastUpdatedAt || a.sequence - b.sequence);
  for (const e of ordered) {
    const d = e.statusDetails ?? {};
    const target = offers.get(e.jobId)?.version;
    // What ran before this job: self_test's updatedBy says it, when the device got that far.
    const before = versionOf(d["updatedBy"]) ?? version;
    switch (e.status) {
      case "QUEUED":
        state = "queued";
        break;
      case "IN_PROGRESS":
        if (d["self_test"] === "ready") {
          state = "rebooting";
          version = before;
        } else if (d["self_test"] !== undefined) {
          // After the reboot the new image runs, on trial, until it reports SUCCEEDED.
          state = "self-testing";
          version = target ?? before;
        } else if (d["receive"] !== undefined) state = "downloading";
        else state = "in progress";
        break;
      case "SUCCEEDED":
        state = "updated";
        version = acceptedVersion(d["reason"]) ?? target ?? version;
        break;
      case "FAILED":
        // The old image reports the failure: it is what runs.
        state = /rolled-back|rolled back/.test(d["reason"] ?? "") ? "rolled back" : "failed";
        version = before;
        break;
      default:
        state = e.status.toLowerCase().replace(/_/g, " ");
    }
  }
  return version === undefined ? { state } : { state, version };
}

/** An EnOS device's part in an offer: SUCCEEDED once it informs the offered version. */
function enosExecution(thing: string, offer: DashboardOffer, device: EnosDeviceRecord | undefined): DashboardExecution {
  if (device?.version !== undefined && device.version === offer.version) return { thing, status: "SUCCEEDED" };
  const last = device?.progress.at(-1);
  if (last === undefined) return { thing, status: "QUEUED" };
  const desc = typeof last.desc === "string" && last.desc.length > 0 ? last.desc : undefined;
  if (last.step < 0) return { thing, status: "FAILED", reason: desc ?? `step ${last.step}` };
  const view: DashboardExecution = { thing, status: "IN_PROGRESS", progress: { done: last.step, total: 100, percent: last.step, unit: "%" } };
  if (desc !== undefined) view.reason = desc;
  return view;
}

/** An AWS job's format and protocol when no offer record says them (a job made with cloud.jobs.createJob). */
function documentOffer(d: JobDescription): DashboardOffer {
  const doc = d.job.document;
  const ota = doc["afr_ota"];
  if (typeof ota === "object" && ota !== null && !Array.isArray(ota)) {
    const protocols = (ota as Record<string, unknown>)["protocols"];
    const mqtt = Array.isArray(protocols) && protocols.includes("MQTT") && !protocols.includes("HTTP");
    return { jobId: d.job.jobId, format: "aws", protocol: mqtt ? "mqtt" : "http", targets: d.job.targets };
  }
  const format = "operation" in doc ? "nrf" : "bc_url" in doc ? "zerynth" : "custom";
  const offer: DashboardOffer = { jobId: d.job.jobId, format, protocol: "http", targets: d.job.targets };
  if (typeof doc["fwversion"] === "string") offer.version = doc["fwversion"];
  return offer;
}

/** The dashboard's whole state from what the cloud holds: pure, so that it can be tested alone. */
export function dashboardState(input: DashboardInput): DashboardState {
  const jobs: DashboardJob[] = [];
  const executionsByThing = new Map<string, JobExecutionRecord[]>();
  for (const d of input.jobs) {
    const offer = input.offers.get(d.job.jobId) ?? documentOffer(d);
    const job: DashboardJob = { jobId: d.job.jobId, format: offer.format, protocol: offer.protocol, createdAt: d.job.createdAt * 1000, status: d.job.status, executions: d.executions.map(executionView) };
    if (offer.version !== undefined) job.version = offer.version;
    jobs.push(job);
    for (const e of d.executions) {
      const list = executionsByThing.get(e.thingName) ?? [];
      list.push(e);
      executionsByThing.set(e.thingName, list);
    }
  }
  const enosByKey = new Map(input.enosDevices.map((d) => [d.deviceKey, d] as const));
  const enosTargets = new Set<string>();
  for (const offer of input.offers.values()) {
    if (offer.format !== "enos") continue;
    const executions = offer.targets.map((t) => enosExecution(t, offer, input.enosDevices.find((d) => d.deviceKey === t && d.productKey === (offer.productKey ?? "xsota"))));
    for (const t of offer.targets) enosTargets.add(t);
    const job: DashboardJob = { jobId: offer.jobId, format: "enos", protocol: offer.protocol, status: executions.every((e) => TERMINAL.has(e.status)) ? "COMPLETED" : "OFFERED", executions };
    if (offer.version !== undefined) job.version = offer.version;
    if (offer.createdAt !== undefined) job.createdAt = offer.createdAt;
    jobs.push(job);
  }
  jobs.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0) || a.jobId.localeCompare(b.jobId));

  const things = new Set<string>([...executionsByThing.keys(), ...enosByKey.keys(), ...enosTargets, ...input.seen.keys()]);
  const devices: DashboardDevice[] = [];
  for (const thing of [...things].sort()) {
    const seen = input.seen.get(thing);
    const enos = enosByKey.get(thing);
    let device: DashboardDevice;
    if (executionsByThing.has(thing)) {
      device = { thing, cloud: "aws", ...awsDevice(executionsByThing.get(thing) ?? [], input.offers) };
    } else if (enos !== undefined || enosTargets.has(thing) || seen?.cloud === "enos") {
      device = { thing, cloud: "enos", state: enosState(enos, input.offers) };
      if (enos?.version !== undefined) device.version = enos.version;
    } else device = { thing, cloud: seen?.cloud ?? "mqtt", state: "idle" };
    if (seen !== undefined) {
      device.lastSeen = seen.lastSeen;
      if (seen.connected !== undefined) device.connected = seen.connected;
    }
    devices.push(device);
  }
  return { now: input.now, devices, jobs };
}

function enosState(device: EnosDeviceRecord | undefined, offers: ReadonlyMap<string, DashboardOffer>): string {
  const last = device?.progress.at(-1);
  const offered = [...offers.values()].some((o) => o.format === "enos" && o.version === device?.version && o.targets.includes(device?.deviceKey ?? ""));
  if (offered) return "updated";
  if (last === undefined) return "idle";
  if (last.step < 0) return "failed";
  return last.step >= 100 ? "installing" : "downloading";
}

/** One line per change from `before` to `after` (the terminal's log of `xs-ota cloud`). */
export function changeLines(before: DashboardState | undefined, after: DashboardState, printed: Map<string, { percent: number; at: number }>): string[] {
  const lines: string[] = [];
  const oldDevices = new Map(before?.devices.map((d) => [d.thing, d] as const) ?? []);
  for (const d of after.devices) {
    const old = oldDevices.get(d.thing);
    if (d.connected === true && old?.connected !== true) lines.push(`${d.thing} connected`);
    else if (d.connected === false && old?.connected === true) lines.push(`${d.thing} disconnected`);
    else if (old === undefined && d.lastSeen !== undefined && d.connected === undefined) lines.push(`${d.thing} heard from (${d.cloud})`);
    if (d.version !== undefined && old?.version !== d.version) lines.push(`${d.thing} runs ${d.version}`);
  }
  const oldJobs = new Map(before?.jobs.map((j) => [j.jobId, j] as const) ?? []);
  for (const j of after.jobs) {
    const old = oldJobs.get(j.jobId);
    if (old === undefined && before !== undefined) lines.push(`job ${j.jobId} created: ${j.version ?? "?"} (${j.format} ${j.protocol}) for ${j.executions.map((e) => e.thing).join(", ")}`);
    const oldExecutions = new Map(old?.executions.map((e) => [e.thing, e] as const) ?? []);
    for (const e of j.executions) {
      const was = oldExecutions.get(e.thing);
      const key = `${j.jobId}/${e.thing}`;
      const changed = was === undefined ? before !== undefined && e.status !== "QUEUED" : was.status !== e.status || was.reason !== e.reason;
      if (changed) {
        lines.push(`job ${j.jobId}: ${e.thing} ${e.status}${e.reason !== undefined ? ` ${e.reason}` : e.progress !== undefined ? ` ${progressText(e.progress)}` : ""}`);
        if (e.progress !== undefined) printed.set(key, { percent: e.progress.percent, at: after.now });
        continue;
      }
      if (e.progress === undefined || was?.progress?.done === e.progress.done) continue;
      const last = printed.get(key);
      // One line per 10 % or per second, whichever comes first, and the last block always.
      if (last === undefined || e.progress.percent >= last.percent + 10 || after.now - last.at >= 1000 || (e.progress.percent === 100 && last.percent !== 100)) {
        printed.set(key, { percent: e.progress.percent, at: after.now });
        lines.push(`job ${j.jobId}: ${e.thing} ${e.status} ${progressText(e.progress)}`);
      }
    }
  }
  return lines;
}

function progressText(p: DashboardProgress): string {
  return p.unit === "%" ? `${p.percent}%` : `${p.done}/${p.total}`;
}

/** The five characters that make text markup in HTML, for everything put into the page. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);
}

/** JSON inside <script>: `<` escaped, so that no string in it can close the script element. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

/**
 * The page's script, plain JavaScript run by the browser as written (no build step). Its
 * functions take the state and return HTML in which every value went through `esc`; the unit
 * tests run this same text in Node (test/dashboard.test.ts).
 */
export const DASHBOARD_SCRIPT = String.raw`
function esc(v) {
  return String(v).replace(/[&<>"']/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]; });
}
function ago(ms, now) {
  if (ms === undefined) return "never";
  var s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}
function when(ms) {
  return ms === undefined ? "—" : new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}
function stateClass(s) {
  return "state-" + String(s).toLowerCase().replace(/[^a-z]+/g, "-");
}
function renderDevices(state, now) {
  if (state.devices.length === 0) return '<tr><td colspan="5" class="empty">No device heard from yet.</td></tr>';
  return state.devices.map(function (d) {
    return '<tr data-thing="' + esc(d.thing) + '">' +
      '<td class="thing">' + esc(d.thing) + (d.connected === true ? ' <span class="dot" title="connected">●</span>' : "") + "</td>" +
      '<td class="version">' + esc(d.version === undefined ? "—" : d.version) + "</td>" +
      '<td class="slot">' + esc(d.slot === undefined ? "—" : d.slot) + "</td>" +
      '<td class="state ' + stateClass(d.state) + '">' + esc(d.state) + "</td>" +
      '<td class="seen" data-ms="' + esc(d.lastSeen === undefined ? "" : d.lastSeen) + '">' + esc(ago(d.lastSeen, now)) + "</td></tr>";
  }).join("");
}
function renderProgress(p) {
  if (p === undefined) return "";
  var label = p.unit === "%" ? p.percent + " %" : p.done + "/" + p.total + " (" + p.percent + " %)";
  return '<span class="bar"><span style="width:' + esc(Math.max(0, Math.min(100, Number(p.percent) || 0))) + '%"></span></span> ' + esc(label);
}
function renderJobs(state) {
  if (state.jobs.length === 0) return '<tr><td colspan="6" class="empty">No job yet: xs-ota job create.</td></tr>';
  return state.jobs.map(function (j) {
    var rows = j.executions.length || 1;
    var head = '<td rowspan="' + rows + '" class="job">' + esc(j.jobId) + '<div class="sub">' + esc(j.status) + (j.version !== undefined ? " · " + esc(j.version) : "") + "</div></td>" +
      '<td rowspan="' + rows + '">' + esc(j.format) + " / " + esc(j.protocol) + "</td>" +
      '<td rowspan="' + rows + '">' + esc(when(j.createdAt)) + "</td>";
    if (j.executions.length === 0) return '<tr data-job="' + esc(j.jobId) + '">' + head + "<td></td><td></td><td></td></tr>";
    return j.executions.map(function (e, i) {
      return '<tr data-job="' + esc(j.jobId) + '" data-thing="' + esc(e.thing) + '">' + (i === 0 ? head : "") +
        '<td class="thing">' + esc(e.thing) + "</td>" +
        '<td class="status ' + stateClass(e.status) + '">' + esc(e.status) + "</td>" +
        '<td class="progress">' + renderProgress(e.progress) + (e.reason !== undefined ? '<div class="' + (/^(FAILED|REJECTED|TIMED_OUT)$/.test(e.status) ? "reason" : "note") + '">' + esc(e.reason) + "</div>" : "") + "</td></tr>";
    }).join("");
  }).join("");
}
`;

const CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
.meta { color: #666; font-size: .9em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
td.thing, td.job, td.version { font-family: ui-monospace, monospace; }
.sub, .reason, .note { color: #666; font-size: .85em; } .reason { color: #b42318; }
.empty { color: #888; font-style: italic; }
.dot { color: #2a2; font-size: .8em; }
.bar { display: inline-block; width: 8em; height: .7em; background: #e5e5e5; border-radius: 3px; overflow: hidden; vertical-align: middle; }
.bar span { display: block; height: 100%; background: #3b7dd8; }
.state-succeeded, .state-updated { color: #17803d; font-weight: 600; }
.state-failed, .state-rejected, .state-rolled-back, .state-timed-out { color: #b42318; font-weight: 600; }
.state-in-progress, .state-downloading, .state-self-testing, .state-rebooting, .state-installing { color: #1d5fb8; }
#live.off { color: #b42318; }
`;

/** The page, with the state it starts from (so that it shows something before /events answers). */
export function dashboardPage(state: DashboardState, title = "xs-ota cloud"): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${CSS}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<div class="meta"><span id="live">connecting…</span> · <a href="/api/state">/api/state</a></div>
<h2>Devices</h2>
<table id="devices"><thead><tr><th>Thing</th><th>Version</th><th>Slot</th><th>State</th><th>Last seen</th></tr></thead><tbody></tbody></table>
<h2>Jobs</h2>
<table id="jobs"><thead><tr><th>Job</th><th>Format / protocol</th><th>Created</th><th>Device</th><th>Status</th><th>Progress</th></tr></thead><tbody></tbody></table>
<script type="application/json" id="initial">${jsonForScript(state)}</script>
<script>
${DASHBOARD_SCRIPT}
(function () {
  var state = JSON.parse(document.getElementById("initial").textContent);
  // The cloud's clock minus the browser's: relative times count from the cloud's own.
  var skew = 0;
  function show(s) {
    state = s;
    skew = s.now - Date.now();
    document.querySelector("#devices tbody").innerHTML = renderDevices(s, s.now);
    document.querySelector("#jobs tbody").innerHTML = renderJobs(s);
  }
  show(state);
  // Only the "last seen" cells change with time alone.
  setInterval(function () {
    var now = Date.now() + skew;
    document.querySelectorAll("td.seen").forEach(function (td) {
      var ms = td.getAttribute("data-ms");
      td.textContent = ago(ms === "" ? undefined : Number(ms), now);
    });
  }, 1000);
  var live = document.getElementById("live");
  var events = new EventSource("/events");
  events.addEventListener("state", function (m) { show(JSON.parse(m.data)); });
  events.onopen = function () { live.textContent = "live"; live.className = "on"; };
  // EventSource reconnects by itself; the page says so meanwhile.
  events.onerror = function () { live.textContent = "disconnected, retrying…"; live.className = "off"; };
})();
</script>
</body></html>
`;
}

/**
 * Keeps the SSE clients and the terminal up to date: `changed()` after anything the cloud saw;
 * the state is derived and sent once per turn of the event loop, however many changes came in it.
 */
export class Dashboard {
  readonly #state: () => DashboardState;
  readonly #onEvent: ((line: string) => void) | undefined;
  readonly #clients = new Set<ServerResponse>();
  readonly #printed = new Map<string, { percent: number; at: number }>();
  #last: DashboardState | undefined;
  #pending: NodeJS.Immediate | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(state: () => DashboardState, onEvent?: (line: string) => void) {
    this.#state = state;
    this.#onEvent = onEvent;
    // The first state is the baseline: what an earlier run left is not news.
    if (onEvent !== undefined) this.#last = state();
  }

  get state(): DashboardState {
    return this.#state();
  }

  changed(): void {
    if (this.#closed || this.#pending !== undefined) return;
    if (this.#clients.size === 0 && this.#onEvent === undefined) return;
    this.#pending = setImmediate(() => {
      this.#pending = undefined;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#closed) return;
    const state = this.#state();
    if (this.#onEvent !== undefined) {
      for (const line of changeLines(this.#last, state, this.#printed)) {
        try {
          this.#onEvent(line);
        } catch {
          // A failing log must not stop the cloud.
        }
      }
      this.#last = state;
    }
    const message = `event: state\ndata: ${JSON.stringify(state)}\n\n`;
    for (const res of this.#clients) res.write(message);
  }

  /** Serves GET /events: the state now, then on every change. */
  subscribe(res: ServerResponse): void {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
    res.write(`retry: 1000\nevent: state\ndata: ${JSON.stringify(this.#state())}\n\n`);
    this.#clients.add(res);
    res.on("close", () => this.#clients.delete(res));
    // A comment now and then, so that proxies and browsers keep an idle stream open.
    this.#heartbeat ??= setInterval(() => {
      for (const c of this.#clients) c.write(": keep-alive\n\n");
    }, 15_000).unref();
  }

  close(): void {
    this.#closed = true;
    if (this.#pending !== undefined) clearImmediate(this.#pending);
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    for (const c of this.#clients) c.end();
    this.#clients.clear();
  }
}
