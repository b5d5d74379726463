/**
 * xs-ota job document: what it prints for AWS's CreateJob is what the device's own parser takes
 * (once AWS has put a presigned URL where the placeholder was), signature included.
 */
import { describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCliLines } from "./support/cli.ts";
import { parseAwsJobMessage } from "../modules/aws/documents.ts";
import { packImage } from "../modules/esp-idf/image.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-jobdoc-"));
const fw = join(dir, "fw.bin");
const image = packImage({ version: "1.2.3", payload: new Uint8Array(5000).fill(0x41), sha256: () => nodeDigests.create("sha256") });
writeFileSync(fw, image);
const key = join(dir, "key.pem");
writeFileSync(key, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }));

/** As AWS IoT sends it to the device: the placeholder replaced by a presigned URL. */
function asSent(document: string, jobId = "fw-1-2-3"): Uint8Array {
  const sent = document.replace(/\$\{aws:iot:s3-presigned-url-v2:([^}]+)\}/g, (_m, url: string) => `${url}?X-Amz-Signature=abc`);
  return new TextEncoder().encode(JSON.stringify({ execution: { jobId, jobDocument: JSON.parse(sent) as unknown } }));
}

describe("xs-ota job document", () => {
  it("an AWS OTA document for an S3 object: presigned-URL placeholder, size, signature; the device plans an HTTP download", async () => {
    const out = join(dir, "job.json");
    const r = await runCliLines(["job", "document", "--file", fw, "--s3-url", "https://bucket.s3.eu-west-1.amazonaws.com/fw.bin", "--key", key, "-o", out]);
    expect(r.code, r.err.join("\n")).toBe(0);
    const text = readFileSync(out, "utf8");
    expect(text).toContain('"update_data_url": "${aws:iot:s3-presigned-url-v2:https://bucket.s3.eu-west-1.amazonaws.com/fw.bin}"');
    const parsed = parseAwsJobMessage(asSent(text), { maxSize: 1 << 20, allowUnsigned: false });
    expect(parsed.kind).toBe("plan");
    if (parsed.kind !== "plan") return;
    expect(parsed.plan).toMatchObject({ protocol: "http", size: image.length, url: "https://bucket.s3.eu-west-1.amazonaws.com/fw.bin?X-Amz-Signature=abc", signature: { keyLabel: "signer.crt" } });
  });

  it("an MQTT stream document names the stream; nRF and Zerynth documents carry their own fields", async () => {
    const mqtt = await runCliLines(["job", "document", "--file", fw, "--stream", "fw-stream", "--key", key]);
    expect(mqtt.code).toBe(0);
    const plan = parseAwsJobMessage(asSent(mqtt.out.join("\n")), { maxSize: 1 << 20, allowUnsigned: false });
    expect(plan.kind === "plan" && plan.plan.protocol === "mqtt" && plan.plan.stream === "fw-stream").toBe(true);
    const nrf = await runCliLines(["job", "document", "--file", fw, "--format", "nrf", "--url", "https://files.example/fw.bin"]);
    expect(JSON.parse(nrf.out.join("\n"))).toEqual({ operation: "app_fw_update", fwversion: "1.2.3", size: image.length, location: { url: "https://files.example/fw.bin" } });
    const zerynth = await runCliLines(["job", "document", "--file", fw, "--format", "zerynth", "--url", "https://files.example/fw.bin"]);
    expect(JSON.parse(zerynth.out.join("\n"))).toMatchObject({ bc_idx: 0, bc_size: image.length, bc_url: "https://files.example/fw.bin" });
  });

  it("refuses what cannot make a document: no source, two sources, MQTT for nRF, a file that is not an image", async () => {
    expect((await runCliLines(["job", "document", "--file", fw])).code).toBe(2);
    expect((await runCliLines(["job", "document", "--file", fw, "--stream", "s", "--url", "https://x/y"])).code).toBe(2);
    expect((await runCliLines(["job", "document", "--file", fw, "--stream", "s", "--format", "nrf"])).code).toBe(2);
    const junk = join(dir, "junk.bin");
    writeFileSync(junk, new Uint8Array(400));
    const r = await runCliLines(["job", "document", "--file", junk, "--url", "https://x/y"]);
    expect(r.code).toBe(1);
    expect(r.err[0]).toMatch(/^error: /);
  });
});
