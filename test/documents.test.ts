/**
 * Job documents. The contract suite (test/contract/documents.contract.ts) runs on Node and on XS.
 * Node only: `xs-ota job parse` agrees with AWS's own OTA agent on which of its published job
 * documents are valid (test/fixtures/aws-ota-jobs/README.md has each verdict and why), and the
 * command's own behaviour: stdin, no job, custom jobs, errors, usage.
 */
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { contract } from "./contract/vitest.ts";
import documents from "./contract/documents.contract.ts";
import { main } from "../cli/main.ts";
import { runCliLines } from "./support/cli.ts";

contract(documents, new URL("./contract/documents.contract.ts", import.meta.url));

const root = resolve(import.meta.dirname, "..");
const fixtures = join(root, "test/fixtures/aws-ota-jobs");
const dir = mkdtempSync(join(tmpdir(), "xs-ota-job-"));

async function run(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  return runCliLines(["job", ...args]);
}

function write(name: string, content: string): string {
  const file = join(dir, name);
  writeFileSync(file, content);
  return file;
}

/** The verdict table of the fixtures' README: file -> "accepts" | "rejects". */
function verdicts(): Map<string, string> {
  const table = new Map<string, string>();
  for (const line of readFileSync(join(fixtures, "README.md"), "utf8").split("\n")) {
    const m = /^\| ([\w.-]+\.json) \| (accepts|rejects) \|/.exec(line);
    if (m) table.set(m[1], m[2]);
  }
  return table;
}

describe("xs-ota job parse agrees with AWS's own OTA agent on its published job documents", () => {
  const table = verdicts();

  it("every fixture has a verdict in the README, and every verdict a fixture", () => {
    const files = readdirSync(fixtures).filter((f) => f.endsWith(".json")).sort();
    expect([...table.keys()].sort()).toEqual(files);
    expect(files.length).toBeGreaterThanOrEqual(20);
    expect([...table.values()].filter((v) => v === "accepts").length).toBeGreaterThanOrEqual(8);
  });

  for (const [name, verdict] of table) {
    it(`${name}: AWS's agent ${verdict} it`, async () => {
      const r = await run("parse", join(fixtures, name));
      if (verdict === "accepts") {
        expect(r.err).toHaveLength(1);
        expect(r.err[0]).toMatch(/^file: (MQTT stream .* in blocks|\S+ with HTTP Range requests)$/);
        expect(r.code).toBe(0);
        const plan = JSON.parse(r.out.join("\n")) as Record<string, unknown>;
        expect(plan.format).toBe("aws-ota");
        expect(typeof plan.jobId).toBe("string");
        expect(plan.size).toBeGreaterThan(0);
      } else {
        expect(r.code).toBe(1);
        expect(r.out).toEqual([]);
        expect(r.err).toHaveLength(1);
        expect(r.err[0]).toMatch(/^error: /);
      }
    });
  }

  it("prints the plan: MQTT stream and file id, size, signature and key label", async () => {
    const r = await run("parse", join(fixtures, "ota-utest-job-doc-a-mqtt.json"));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.join("\n"))).toEqual({
      jobId: "AFR_OTA-testjob20",
      format: "aws-ota",
      protocol: "mqtt",
      stream: "AFR_OTA-XYZ",
      fileId: 0,
      size: 10240,
      signature: "MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg==",
      keyLabel: "test.crt",
      versionNumber: 1,
    });
  });

  it("says why a document is refused", async () => {
    const why = async (name: string) => (await run("parse", join(fixtures, name))).err[0];
    expect(await why("ota-utest-job-doc-invalid-protocol.json")).toBe(
      'error: afr_ota.protocols[0] must be "MQTT" or "HTTP", got "XYZ" (job AFR_OTA-testjob20)',
    );
    expect(await why("ota-utest-job-doc-filesize-overflow.json")).toContain("afr_ota.files[0].filesize 4294963220 is over 4294963200");
    expect(await why("ota-utest-job-doc-invalid-number-nan.json")).toContain('afr_ota.files[0].filesize must be an integer, got "NaN"');
    expect(await why("ota-utest-job-doc-invalid-not-json.json")).toMatch(/^error: message is not JSON/);
  });
});

describe("xs-ota job", () => {
  const MQTT_JOB = readFileSync(join(fixtures, "ota-utest-job-doc-a-mqtt.json"), "utf8");

  it("reads the message from stdin with '-'", () => {
    const out = execFileSync(process.execPath, [join(root, "bin/xs-ota.js"), "job", "parse", "-"], { input: MQTT_JOB, encoding: "utf8" });
    expect(JSON.parse(out)).toMatchObject({ jobId: "AFR_OTA-testjob20", protocol: "mqtt", stream: "AFR_OTA-XYZ" });
  });

  it("reads stdin when no FILE is given, and exits 1 on a refusal", () => {
    let status = 0;
    let stderr = "";
    try {
      execFileSync(process.execPath, [join(root, "bin/xs-ota.js"), "job", "parse"], { input: "not a json", encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      const x = e as { status: number; stderr: string };
      status = x.status;
      stderr = x.stderr;
    }
    expect(status).toBe(1);
    expect(stderr).toMatch(/^error: message is not JSON/);
  });

  it("no execution: no job, exit 0", async () => {
    const r = await run("parse", write("none.json", '{"clientToken":"0:device","timestamp":1602795143}'));
    expect(r).toEqual({ code: 0, out: ["no job"], err: [] });
  });

  it("a custom document: not handled here, exit 1", async () => {
    const r = await run("parse", write("custom.json", JSON.stringify({ execution: { jobId: "reboot-7", jobDocument: { action: "reboot" } } })));
    expect(r).toEqual({ code: 1, out: [], err: ["custom job reboot-7: not an update document this device handles"] });
  });

  it("--prefer http picks HTTP when the job allows both", async () => {
    const both = JSON.stringify({
      execution: {
        jobId: "both-1",
        jobDocument: {
          afr_ota: {
            protocols: ["MQTT", "HTTP"],
            streamname: "AFR_OTA-s",
            files: [{ filesize: 5, fileid: 0, certfile: "k", update_data_url: "https://example.com/f.bin", "sig-sha256-ecdsa": "A".repeat(86) + "==" }],
          },
        },
      },
    });
    const file = write("both.json", both);
    expect(JSON.parse((await run("parse", file)).out.join("\n")).protocol).toBe("mqtt");
    const http = JSON.parse((await run("parse", "--prefer", "http", file)).out.join("\n"));
    expect(http).toMatchObject({ protocol: "http", url: "https://example.com/f.bin" });
    expect(http.stream).toBeUndefined();
  });

  it("--max-size refuses larger images", async () => {
    const r = await run("parse", "--max-size", "4096", join(fixtures, "ota-utest-job-doc-a-mqtt.json"));
    expect(r.code).toBe(1);
    expect(r.err[0]).toContain("filesize 10240 is over the 4096 bytes this device takes");
  });

  it("nRF and Zerynth documents need --allow-unsigned", async () => {
    const nrf = write(
      "nrf.json",
      JSON.stringify({
        execution: {
          jobId: "nrf-1",
          versionNumber: 1,
          jobDocument: { operation: "app_fw_update", fwversion: "v1.0.2", size: 181124, location: { protocol: "http:", host: "bucket.s3.amazonaws.com", path: "app_update.bin" } },
        },
      }),
    );
    const refused = await run("parse", nrf);
    expect(refused.code).toBe(1);
    expect(refused.err[0]).toContain("unsigned document on a production device");
    const r = await run("parse", "--allow-unsigned", nrf);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.join("\n"))).toEqual({
      jobId: "nrf-1",
      format: "nrf-fota",
      protocol: "http",
      url: "http://bucket.s3.amazonaws.com/app_update.bin",
      size: 181124,
      version: "v1.0.2",
      versionNumber: 1,
    });
  });

  it("--format enos with --file-base", async () => {
    const push = write(
      "enos.json",
      JSON.stringify({
        id: "77",
        version: "1.0",
        method: "ota.device.upgrade",
        params: { version: "v1.0", sign: "a".repeat(32), signMethod: "md5", fileUrl: "/1b30e0ea83002000/ota/kadak13", fileSize: 1024 },
      }),
    );
    const r = await run("parse", "--format", "enos", "--file-base", "https://files.example.com/", "--allow-unsigned", push);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.join("\n"))).toEqual({
      jobId: "77",
      format: "enos",
      protocol: "http",
      url: "https://files.example.com/1b30e0ea83002000/ota/kadak13",
      size: 1024,
      digest: { algorithm: "md5", hex: "a".repeat(32) },
      version: "v1.0",
    });
    expect(r.err).toEqual(["file: https://files.example.com/1b30e0ea83002000/ota/kadak13 with HTTP Range requests"]);
    // Without a file base the push is still valid: its file comes through EnOS's HTTP broker.
    const noBase = await run("parse", "--format", "enos", "--allow-unsigned", push);
    expect(noBase.code).toBe(0);
    expect(JSON.parse(noBase.out.join("\n"))).toMatchObject({ jobId: "77", fileUri: "/1b30e0ea83002000/ota/kadak13", size: 1024 });
    expect(noBase.err[0]).toMatch(/^file: \/1b30e0ea83002000\/ota\/kadak13 through the EnOS HTTP broker: POST \/auth\/\{productKey\}\/\{deviceKey\}/);
  });

  it("--format enos: an enos-connect:// push is a plan fetched through the HTTP broker", async () => {
    const push = write(
      "enos-connect.json",
      JSON.stringify({
        id: "78",
        version: "1.0",
        method: "ota.device.upgrade",
        params: { version: "v1.1", sign: "b".repeat(64), signMethod: "sha256", fileUrl: "enos-connect://23f5ff270b800000.zip", fileSize: 2048 },
      }),
    );
    const r = await run("parse", "--format", "enos", "--allow-unsigned", push);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.join("\n"))).toMatchObject({ jobId: "78", fileUri: "enos-connect://23f5ff270b800000.zip", size: 2048, version: "v1.1" });
    expect(r.err[0]).toContain("GET /multipart/sys/{productKey}/{deviceKey}/file/download?sessionId=..&fileUri=..&category=ota");
  });

  it("a missing file: error, exit 1", async () => {
    const r = await run("parse", join(dir, "nope.json"));
    expect(r.code).toBe(1);
    expect(r.err[0]).toMatch(/^error: cannot read .*nope\.json/);
  });

  it("usage errors: usage, exit 2", async () => {
    for (const args of [[], ["create"], ["frobnicate"], ["parse", "--format", "gcp"], ["parse", "--max-size", "-1"], ["parse", "a", "b"], ["parse", "--bogus"]]) {
      const r = await run(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.out).toEqual([]);
      expect(r.err.some((l) => l.startsWith("usage: xs-ota job"))).toBe(true);
    }
  });

  it("is listed in xs-ota's usage", async () => {
    const err: string[] = [];
    const code = await main(["help"], { out: (l) => err.push(l), err: () => {} });
    expect(code).toBe(0);
    expect(err).toContain("  xs-ota job parse [--format aws|enos] [FILE|-]");
  });
});
