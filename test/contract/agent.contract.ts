/**
 * The agent's transition table, case by case, on a simulated device with fake cloud and network.
 * Every case records the transitions it took; the last case checks that together they covered
 * every row of the table, and that the table has no unreachable state and no dead end.
 */
import { suite } from "./harness.ts";
import { equal, ok, deepEqual } from "./assert.ts";
import { AGENT_STATES, AGENT_TABLE, JOB_KEY, type AgentState } from "../../modules/agent/agent.ts";
import { analyse } from "../../modules/agent/machine.ts";
import { decodeOtadata, OTA_STATES } from "../../modules/esp-idf/otadata.ts";
import { AgentRig, appImage, httpPlan, settle, sign } from "./agent-fixture.ts";
import { pattern } from "./pattern.ts";
import { utf8Decode, utf8Encode } from "../../modules/codec/utf8.ts";
import type { UpdatePlan } from "../../modules/jobs/plan.ts";

const covered = new Set<string>();
const URL_1 = "http://files.test/fw-1.0.1.bin";
const note = (rig: AgentRig) => {
  for (const t of [...rig.traces, ...rig.agent.trace]) {
    const m = /^(\S+) --(\S+)--> /.exec(t);
    if (m) covered.add(`${m[1]} ${m[2]}`);
  }
};

/** Rewrites fields of the agent's job record in the store, as a cut at another moment would have left it. */
function editJobRecord(rig: AgentRig, fields: Record<string, unknown>): void {
  const recorded = JSON.parse(utf8Decode(rig.store.get(JOB_KEY) ?? new Uint8Array(0))) as Record<string, unknown>;
  rig.store.set(JOB_KEY, utf8Encode(JSON.stringify({ ...recorded, ...fields })));
}

async function downloaded(rig: AgentRig, image = appImage("1.0.1", 6000)): Promise<void> {
  rig.http.files.set(URL_1, image);
  await rig.online();
  rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", URL_1, image) });
  await settle();
}

export default suite("update agent", (test) => {
  test("boots, connects, starts the channel and asks for the next job", async () => {
    const rig = new AgentRig();
    await rig.online();
    equal(rig.agent.state, "idle");
    equal(rig.channel.nextRequests, 1, "asked once");
    note(rig);
  });

  test("a channel start that fails (the broker went away meanwhile) is made again when the connection comes back", async () => {
    const rig = new AgentRig();
    rig.channel.failStarts = 1;
    await rig.online();
    equal(rig.agent.state, "starting", "no channel yet");
    equal(rig.channel.nextRequests, 0);
    rig.agent.dispatch({ type: "connected" });
    await settle();
    equal(rig.channel.starts, 2, "started again");
    equal(rig.agent.state, "idle");
    equal(rig.channel.nextRequests, 1, "asked for the next job");
    note(rig);
  });

  test("no job and refused documents: stays idle, refusals reported with the reason", async () => {
    const rig = new AgentRig();
    await rig.online();
    rig.channel.offer({ kind: "none" });
    rig.channel.offer({ kind: "invalid", jobId: "bad-1", reason: "afr_ota.files[0].filesize must be a positive integer" });
    await settle();
    equal(rig.agent.state, "idle");
    equal(rig.channel.last("failed")?.detail, "document/document: afr_ota.files[0].filesize must be a positive integer");
    note(rig);
  });

  test("custom jobs: unsupported without a handler; the app's handler reports its own outcome", async () => {
    const rig = new AgentRig();
    await rig.online();
    rig.channel.offer({ kind: "custom", jobId: "c-1", document: { op: "reboot" } });
    await settle();
    ok(rig.channel.last("failed")?.detail.includes("unsupported"), "failed as unsupported");
    rig.app = { selfTest: () => true, customJob: async (id) => ({ succeeded: id === "c-2", reason: "did it" }) };
    rig.boot();
    await rig.online();
    rig.channel.offer({ kind: "custom", jobId: "c-2", document: {} });
    await settle();
    equal(rig.channel.last("custom")?.detail, "true did it");
    equal(rig.agent.state, "idle");
    note(rig);
  });

  test("a signed HTTP job downloads, verifies, selects the slot, reports and restarts", async () => {
    const rig = new AgentRig();
    await downloaded(rig);
    equal(rig.agent.state, "rebooting");
    equal(rig.system.restarts, 1, "restarted");
    equal(rig.device.boot.info().next, "ota_1", "new image selected");
    equal(rig.channel.last("before-reboot")?.detail, "1.0.0", "previous version for updatedBy");
    ok(rig.channel.reports.some((r) => r.kind === "progress"), "progress reported");
    // A host whose restart() returns (the simulator) boots the same agent again.
    rig.device.restart();
    rig.agent.dispatch({ type: "boot" });
    equal(rig.agent.state, "connecting");
    note(rig);
  });

  test("after the reboot: self-test passes, image confirmed, security floor raised, SUCCEEDED", async () => {
    const rig = new AgentRig();
    await downloaded(rig, (() => appImage("1.0.1", 6000))());
    await rig.reboot();
    await settle();
    equal(rig.channel.last("succeeded")?.detail, "1.0.1");
    equal(rig.device.boot.info().state, "valid", "confirmed");
    equal(rig.store.get(JOB_KEY), undefined, "record cleared");
    equal(rig.agent.state, "idle");
    note(rig);
  });

  test("an outcome the cloud did not get stays recorded and is reported again after the next connect", async () => {
    const rig = new AgentRig();
    await downloaded(rig, (() => appImage("1.0.1", 6000))());
    let answer: (delivered: boolean) => void = () => undefined;
    rig.channel.delivers = new Promise<boolean>((resolve) => (answer = resolve));
    await rig.reboot();
    await settle();
    equal(rig.agent.state, "reporting", "waits for the report before forgetting the job");
    rig.agent.dispatch({ type: "connected" });
    equal(rig.agent.state, "reporting");
    answer(false);
    await settle();
    equal(rig.agent.state, "idle");
    ok(rig.store.get(JOB_KEY) !== undefined, "record kept: the outcome is not lost");
    rig.channel.delivers = true;
    rig.agent.dispatch({ type: "connected" });
    await settle();
    equal(rig.channel.reports.filter((r) => r.kind === "succeeded").length, 2, "reported again");
    equal(rig.store.get(JOB_KEY), undefined, "record cleared once delivered");
    equal(rig.agent.state, "idle");
    note(rig);
  });

  test("self-test fails: rejected, back on the old image, which reports FAILED with the reason", async () => {
    const rig = new AgentRig();
    rig.app = { selfTest: () => false };
    await downloaded(rig);
    await rig.reboot();
    await settle();
    equal(rig.agent.state, "rebooting", "the new image rejected itself");
    await rig.reboot();
    await settle();
    equal(rig.system.version(), "1.0.0", "old image running");
    equal(rig.channel.last("failed")?.detail, "self-test/self-test: the app's self-test returned false");
    equal(rig.channel.last("succeeded"), undefined, "the old image never reports success");
    note(rig);
  });

  test("self-test that throws or hangs counts as failed", async () => {
    const rig = new AgentRig();
    rig.app = { selfTest: () => new Promise<boolean>(() => undefined) };
    await downloaded(rig);
    await rig.reboot();
    rig.clock.fireNext();
    await settle();
    equal(rig.agent.state, "rebooting");
    ok(rig.store.get(JOB_KEY) !== undefined, "rolled-back record kept for the old image");
    await rig.reboot();
    ok(rig.channel.last("failed")?.detail.includes("did not finish within 5000 ms"), "timeout reason");
    const thrower = new AgentRig();
    thrower.app = { selfTest: () => { throw new Error("sensor missing"); } };
    await downloaded(thrower);
    await thrower.reboot();
    await settle();
    await thrower.reboot();
    ok(thrower.channel.last("failed")?.detail.includes("self-test threw: sensor missing"), "thrown reason");
    note(rig);
    note(thrower);
  });

  test("a trial boot cut short (before the self-test's verdict) is tried once more, and the update succeeds", async () => {
    const rig = new AgentRig();
    await downloaded(rig);
    rig.device.restart(); // the trial boot starts; power goes before its agent says anything
    await rig.reboot(); // the bootloader gives up on the trial and starts the old image
    equal(rig.system.version(), "1.0.0", "the old image runs");
    equal(rig.agent.state, "rebooting", "it selected the new image again and restarted");
    equal(rig.channel.last("failed"), undefined, "no failure reported");
    equal(rig.device.boot.info().next, "ota_1", "the new image is selected for its second trial");
    await rig.reboot();
    await settle();
    equal(rig.system.version(), "1.0.1");
    equal(rig.device.boot.info().state, "valid", "confirmed");
    equal(rig.channel.last("succeeded")?.detail, "1.0.1");
    note(rig);
  });

  test("a trial boot cut short twice is rolled back for good: FAILED, saying so, on the old image", async () => {
    const rig = new AgentRig();
    await downloaded(rig);
    rig.device.restart();
    await rig.reboot(); // first interruption: retried
    equal(rig.agent.state, "rebooting");
    rig.device.restart(); // the second trial boot crashes too
    await rig.reboot();
    await settle();
    equal(rig.system.version(), "1.0.0");
    ok(rig.channel.last("failed")?.detail.includes("boot/rolled-back: the trial boot of the new image in ota_1 was interrupted twice"), `reported: ${rig.channel.last("failed")?.detail}`);
    equal(rig.store.get(JOB_KEY), undefined, "record cleared once reported");
    note(rig);
  });

  test("a cut after the retry is counted but before the slot is selected: still only one retry", async () => {
    const rig = new AgentRig();
    await downloaded(rig);
    rig.device.restart();
    // The retry is counted in the record first; make the select that follows never happen by
    // cutting power at once: the device comes back on the old image, the slot still aborted.
    editJobRecord(rig, { trialRetries: 1 });
    await rig.reboot();
    await settle();
    equal(rig.system.version(), "1.0.0");
    ok(rig.channel.last("failed")?.detail.includes("interrupted twice"), `reported: ${rig.channel.last("failed")?.detail}`);
    note(rig);
  });

  test("a cut between selecting the new slot and recording it: the trial boot goes on as the update's and SUCCEEDS", async () => {
    const rig = new AgentRig();
    const old = new Uint8Array(rig.device.partitions.open("ota_0").read(8192, 0));
    await downloaded(rig);
    // verify-then-select has written otadata; the record still says "download", as it did
    // before the cut (with the download's progress records beside it).
    editJobRecord(rig, { phase: "download", secureVersion: undefined });
    rig.store.set("ota.prog", utf8Encode("{}"));
    await rig.reboot();
    await settle();
    equal(rig.system.version(), "1.0.1", "the trial boot runs the new image");
    equal(rig.device.boot.info().state, "valid", "confirmed after its self-test");
    equal(rig.channel.last("succeeded")?.detail, "1.0.1");
    equal(rig.channel.last("failed"), undefined, "nothing failed");
    equal(rig.store.get("ota.prog"), undefined, "the download's records are gone");
    deepEqual([...new Uint8Array(rig.device.partitions.open("ota_0").read(8192, 0))], [...old], "the old image, the fallback, untouched");
    note(rig);
  });

  test("a job resumed after the running slot changed starts over: progress of the other slot is not used", async () => {
    const rig = new AgentRig();
    const image = appImage("1.0.1", 6000);
    rig.http.files.set(URL_1, image);
    // A record of this job downloading into ota_0, the slot now running, with progress beside it.
    rig.store.set(JOB_KEY, utf8Encode(JSON.stringify({ plan: httpPlan("job-1", URL_1, image), phase: "download", slot: "ota_0", previous: "0.9.0" })));
    rig.store.set("ota.prog", utf8Encode(JSON.stringify({ id: "job-1", size: image.length, offset: 4096 })));
    rig.boot();
    await rig.online();
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", URL_1, image) });
    await settle();
    equal(rig.device.boot.info().next, "ota_1", "downloaded whole into the other slot and selected it");
    ok(rig.channel.reports.every((r) => r.kind !== "failed"), "nothing failed");
    note(rig);
  });

  test("a trial boot cut short whose image no longer verifies is not retried: FAILED with the reason", async () => {
    const rig = new AgentRig();
    await downloaded(rig);
    rig.device.restart();
    // Flash rot in the new slot: a bit of its payload flips (NOR can clear bits without an erase).
    const slot = rig.device.partitions.open("ota_1");
    const at = 4000;
    const byte = new Uint8Array(slot.read(1, at))[0];
    ok(byte !== 0, "a byte with a bit to clear");
    slot.write(Uint8Array.of(byte & (byte - 1)), at);
    await rig.reboot();
    await settle();
    equal(rig.system.version(), "1.0.0");
    ok(rig.channel.last("failed")?.detail.includes("no longer verifies"), `reported: ${rig.channel.last("failed")?.detail}`);
    note(rig);
  });

  test("a self-test that fails is not retried", async () => {
    const rig = new AgentRig();
    rig.app = { selfTest: () => false };
    await downloaded(rig);
    await rig.reboot();
    await settle();
    await rig.reboot();
    await settle();
    equal(rig.system.version(), "1.0.0");
    equal(rig.system.restarts, 2, "restarted into the new image, then back: no third restart");
    ok(rig.channel.last("failed")?.detail.startsWith("self-test/self-test"), "the self-test's reason");
    note(rig);
  });

  test("a rebooted image that is not newer than the one before is rejected", async () => {
    const rig = new AgentRig();
    const same = appImage("1.0.1", 6000);
    await downloaded(rig, same);
    rig.store.set(JOB_KEY, rig.store.get(JOB_KEY)!.slice());
    const record = JSON.parse(String.fromCharCode(...rig.store.get(JOB_KEY)!)) as { previous: string };
    record.previous = "1.0.1";
    rig.store.set(JOB_KEY, Uint8Array.from(JSON.stringify(record), (c) => c.charCodeAt(0)));
    await rig.reboot();
    await settle();
    equal(rig.agent.state, "rebooting");
    await rig.reboot();
    ok(rig.channel.last("failed")?.detail.includes("version-rejected"), "reason says version");
    note(rig);
  });

  test("a bad signature fails the job at verify and leaves the boot slot alone", async () => {
    const rig = new AgentRig();
    const image = appImage("1.0.1", 6000);
    rig.http.files.set(URL_1, image);
    await rig.online();
    const before = rig.device.otadata();
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", URL_1, image, { signature: { base64: sign(appImage("1.0.9", 10)), keyLabel: "signer.crt" } }) });
    await settle();
    equal(rig.agent.state, "idle");
    ok(rig.channel.last("failed")?.detail.startsWith("verify/signature-invalid"), rig.channel.last("failed")?.detail ?? "no report");
    deepEqual(Array.from(rig.device.otadata().subarray(0, 64)), Array.from(before.subarray(0, 64)), "otadata untouched");
    note(rig);
  });

  test("an image that is not newer, or below the security floor, is refused from its header before it is written", async () => {
    const rig = new AgentRig();
    const old = appImage("0.9.0", 6000);
    rig.http.files.set(URL_1, old);
    await rig.online();
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", URL_1, old) });
    await settle();
    ok(rig.channel.last("failed")?.detail.includes("verify/version-rejected"), rig.channel.last("failed")?.detail ?? "");
    const slot = new Uint8Array(rig.device.partitions.open("ota_1").read(16, 0));
    ok(slot.every((b) => b === 0xff), "nothing written to the slot");
    note(rig);
  });

  test("a job that says it installs the running version is refused before any transfer", async () => {
    const rig = new AgentRig();
    await rig.online();
    rig.channel.offer({ kind: "plan", plan: { ...httpPlan("job-1", URL_1, appImage("1.0.0", 100)), version: "1.0.0" } });
    await settle();
    ok(rig.channel.last("failed")?.detail.includes("already running"), "same version");
    equal(rig.http.requests.length, 0, "nothing fetched");
    note(rig);
  });

  test("an expired URL: the job is asked for again and the fresh URL continues from the same offset", async () => {
    const rig = new AgentRig();
    const image = appImage("1.0.1", 9000);
    rig.http.files.set(URL_1, image);
    rig.http.cutAfter.set(URL_1, 4000);
    await rig.online();
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", URL_1, image) });
    await settle();
    rig.agent.dispatch({ type: "connected" });
    equal(rig.agent.state, "downloading", "a reconnect during the download keeps it going");
    rig.http.refuse.add(URL_1);
    rig.clock.fireNext(); // the retry after the drop meets an expired URL
    await settle();
    equal(rig.agent.state, "refreshing");
    rig.agent.dispatch({ type: "connected" });
    const fresh = "http://files.test/fw-1.0.1.bin?sig=new";
    rig.http.files.set(fresh, image);
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", fresh, image) });
    await settle();
    ok(rig.http.requests.some((r) => r.startsWith(fresh) && !r.endsWith("bytes=0-")), "continued, not restarted");
    equal(rig.agent.state, "rebooting");
    note(rig);
  });

  test("a transfer that fails for good is reported with its stage and code", async () => {
    const rig = new AgentRig();
    await rig.online();
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", "http://files.test/missing.bin", appImage("1.0.1", 100)) });
    await settle();
    rig.http.refuse.clear();
    ok(rig.agent.state === "refreshing" || rig.agent.state === "idle", rig.agent.state);
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-2", URL_1, new Uint8Array(0x20000)) });
    await settle();
    ok(rig.channel.last("failed")?.detail.startsWith("flash/image-too-large"), rig.channel.last("failed")?.detail ?? "");
    note(rig);
  });

  test("a new job mid-download replaces the old one; the old slot is never selected", async () => {
    const rig = new AgentRig();
    const a = appImage("1.0.1", 9000);
    const b = appImage("1.0.2", 6000);
    rig.http.files.set(URL_1, a);
    rig.http.files.set("http://files.test/b.bin", b);
    rig.http.cutAfter.set(URL_1, 3000);
    await rig.online();
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", URL_1, a) });
    await settle(5);
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", URL_1, a) });
    equal(rig.agent.state, "downloading", "the same job again changes nothing");
    rig.channel.offer({ kind: "none" });
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-2", "http://files.test/b.bin", b) });
    await settle();
    equal(rig.agent.state, "rebooting");
    await rig.reboot();
    await settle();
    equal(rig.channel.last("succeeded")?.jobId, "job-2");
    equal(rig.system.version(), "1.0.2");
    note(rig);
  });

  test("a reboot mid-download resumes the same job from the bytes in flash", async () => {
    const rig = new AgentRig();
    const image = appImage("1.0.1", 9000);
    rig.http.files.set(URL_1, image);
    rig.http.cutAfter.set(URL_1, 5000);
    await rig.online();
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", URL_1, image) });
    await settle();
    rig.http.cutAfter.delete(URL_1);
    rig.http.requests = [];
    rig.boot(); // power cut: the agent starts over on the old image
    await rig.online();
    rig.channel.offer({ kind: "plan", plan: httpPlan("job-1", URL_1, image) });
    await settle();
    ok(rig.http.requests.length > 0 && !rig.http.requests[0].endsWith("bytes=0-"), `resumed: ${rig.http.requests[0]}`);
    equal(rig.agent.state, "rebooting");
    note(rig);
  });

  test("an MQTT stream job downloads through the agent", async () => {
    const image = appImage("1.0.1", 7000);
    const rig = new AgentRig(image);
    await rig.online();
    rig.channel.offer({ kind: "plan", plan: { jobId: "job-s", format: "aws-ota", protocol: "mqtt", stream: "AFR_OTA-1", fileId: 0, size: image.length, signature: { base64: sign(image), keyLabel: "signer.crt" } } });
    await settle(60);
    equal(rig.agent.state, "rebooting");
    ok(rig.broker.requests.length > 0, "streamed");
    note(rig);
  });

  test("NVS wear: one resume record per checkpoint, over HTTP and over MQTT streams", async () => {
    // The rig records HTTP progress every 2000 bytes and a stream every 16 blocks of 1 KB.
    const image = appImage("1.0.1", 60 * 1024);
    const checkpoints = { http: Math.ceil(image.length / 2000), mqtt: Math.ceil(image.length / (16 * 1024)) };
    for (const protocol of ["http", "mqtt"] as const) {
      const rig = new AgentRig(image);
      rig.http.files.set(URL_1, image);
      await rig.online();
      const before = rig.store.writes;
      const plan: UpdatePlan = protocol === "http" ? httpPlan("job-w", URL_1, image) : { jobId: "job-w", format: "aws-ota", protocol: "mqtt", stream: "AFR_OTA-1", fileId: 0, size: image.length, signature: { base64: sign(image), keyLabel: "signer.crt" } };
      rig.channel.offer({ kind: "plan", plan });
      await settle(200);
      equal(rig.agent.state, "rebooting", `${protocol}: downloaded and selected`);
      // Besides the checkpoints: the job record when the download starts and when the image is selected.
      const writes = rig.store.writes - before;
      ok(writes <= checkpoints[protocol] + 3, `${protocol}: ${writes} store writes for ${checkpoints[protocol]} checkpoints`);
    }
  });

  test("a reconnect in any state restarts the channel", async () => {
    const rig = new AgentRig();
    await rig.online();
    const starts = rig.channel.starts;
    rig.agent.dispatch({ type: "connected" });
    await settle();
    ok(rig.channel.starts > starts, "started again");
    rig.app = { selfTest: () => new Promise<boolean>(() => undefined) };
    await downloaded(rig);
    await rig.reboot();
    rig.agent.dispatch({ type: "connected" });
    await settle();
    equal(rig.agent.state, "self-testing");
    note(rig);
    const big = pattern(1, 1);
    ok(big.length === 1);
  });

  test("the table has no unreachable state and no dead end, and the cases above took every row", () => {
    const { unreachable, deadEnds } = analyse(AGENT_TABLE, "booting", AGENT_STATES as AgentState[]);
    deepEqual(unreachable, [], "unreachable states");
    deepEqual(deadEnds, [], "states without a way out");
    const missing = AGENT_TABLE.map((t) => `${t.state} ${t.event}`).filter((k) => !covered.has(k));
    deepEqual(missing, [], "rows no case took");
  });
});

export { OTA_STATES, decodeOtadata };
