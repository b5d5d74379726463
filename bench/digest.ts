/**
 * node bin/run.js bench/digest.ts
 *
 * Digest throughput on Node, side by side in one run: a 16 MB pseudo-random file hashed by
 * `sha256sum` (a process, wall time), by the simulator host's digests (node:crypto, zlib) and by
 * the pure-JS fallback (@noble/hashes), each streamed in 64 KB reads, best of 3, as MB/s and as a
 * ratio against sha256sum. Then on the XS engine, which counts work deterministically (`compute`):
 * one P-256 signature verification (@noble/curves), first and second (tables built), and pure-JS
 * SHA-256 per KB, which is why a device hashes its image with a native Digest.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";
import { p256 } from "../modules/verify/noble-signature.ts";
import { sha256 } from "@noble/hashes/sha2.js";
import type { DigestAlgorithm, DigestFactory } from "../modules/ports/digest.ts";
import { nobleDigests } from "../modules/verify/noble-digest.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { bundleForXs } from "../hosts/sim/bundle.ts";
import { XsWorker } from "../hosts/sim/xsnap.ts";

const MB = 1 << 20;
const FILE_BYTES = 16 * MB;
const READ = 64 * 1024;
const RUNS = 3;
const XS_HASH_KB = 64;

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const mbps = (bytes: number, ms: number) => bytes / MB / (ms / 1000);

/** Best wall time of RUNS runs of `run`, with what the last run returned. */
function best<T>(run: () => T): { ms: number; value: T } {
  let ms = Infinity;
  let value: T | undefined;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    value = run();
    ms = Math.min(ms, performance.now() - t0);
  }
  return { ms, value: value as T };
}

/** Streams the file through a digest in 64 KB reads into one reused buffer. */
function digestFile(file: string, digests: DigestFactory, algorithm: DigestAlgorithm): string {
  const d = digests.create(algorithm);
  const buffer = new Uint8Array(READ);
  const fd = openSync(file, "r");
  try {
    for (let n; (n = readSync(fd, buffer, 0, READ, null)) > 0; ) d.update(buffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hex(d.finish());
}

const dir = mkdtempSync(join(tmpdir(), "xs-ota-digest-"));
const file = join(dir, "image.bin");
let failed = false;
let summary = "";
try {
  writeFileSync(file, randomBytes(FILE_BYTES));
  console.log(`${FILE_BYTES / MB} MB pseudo-random file, ${READ / 1024} KB reads, best of ${RUNS} (Node ${process.version})`);

  const reference = best(() => {
    const r = spawnSync("sha256sum", [file], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`sha256sum failed: ${r.error?.message ?? r.stderr}`);
    return r.stdout.split(/\s/)[0];
  });
  const base = mbps(FILE_BYTES, reference.ms);
  const rows: { label: string; ms: number; check?: string }[] = [{ label: "sha256sum (process, wall)", ms: reference.ms }];
  const measure = (label: string, digests: DigestFactory, algorithm: DigestAlgorithm, check: boolean) => {
    const r = best(() => digestFile(file, digests, algorithm));
    rows.push({ label, ms: r.ms, ...(check ? { check: r.value } : {}) });
  };
  measure("node:crypto sha256", nodeDigests, "sha256", true);
  measure("@noble sha256 on Node", nobleDigests, "sha256", true);
  measure("node:crypto md5", nodeDigests, "md5", false);
  measure("zlib crc32", nodeDigests, "crc32", false);

  for (const row of rows) {
    const speed = mbps(FILE_BYTES, row.ms);
    const agrees = row.check === undefined ? "" : row.check === reference.value ? "  digest = sha256sum's" : `  DIGEST ${row.check} != sha256sum's ${reference.value}`;
    if (row.check !== undefined && row.check !== reference.value) failed = true;
    console.log(`  ${`${row.label}:`.padEnd(28)} ${speed.toFixed(0).padStart(6)} MB/s, ${(speed / base).toFixed(2)}x sha256sum${agrees}`);
  }
  const ratio = (label: string) => {
    const row = rows.find((r) => r.label === label);
    return row ? (mbps(FILE_BYTES, row.ms) / base).toFixed(2) : "?";
  };

  // XS: a fixed ECDSA P-256 signature over a SHA-256 digest, made here with noble on Node.
  const message = randomBytes(1024);
  const digest = sha256(message);
  const secretKey = p256.utils.randomSecretKey();
  const publicKey = p256.getPublicKey(secretKey, false);
  const signature = p256.sign(digest, secretKey, { prehash: false });
  if (!p256.verify(signature, digest, publicKey, { prehash: false, lowS: false })) throw new Error("noble does not verify its own signature on Node");

  const entry = `
import { p256 } from ${JSON.stringify(fileURLToPath(new URL("../modules/verify/noble-signature.ts", import.meta.url)))};
import { nobleDigests } from ${JSON.stringify(fileURLToPath(new URL("../modules/verify/noble-digest.ts", import.meta.url)))};
const bytes = (h) => { const b = new Uint8Array(h.length / 2); for (let i = 0; i < b.length; i++) b[i] = parseInt(h.substr(2 * i, 2), 16); return b; };
const signature = bytes(${JSON.stringify(hex(signature))});
const digest = bytes(${JSON.stringify(hex(digest))});
const publicKey = bytes(${JSON.stringify(hex(publicKey))});
let data = new Uint8Array(0);
globalThis.__bench = {
  verify: () => p256.verify(signature, digest, publicKey, { prehash: false, lowS: false }),
  fill(n) { data = new Uint8Array(n); let x = 1; for (let i = 0; i < n; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; data[i] = x >>> 24; } },
  sha256() { const d = nobleDigests.create("sha256"); for (let at = 0; at < data.length; at += 4096) d.update(data.subarray(at, at + 4096)); return d.finish(); },
};
`;
  const xs = new XsWorker("bench-digest");
  try {
    // bundleForXs lowers class static fields only outside node_modules (rollup-plugin-esbuild's
    // default exclude), and @noble/curves has `static BASE = new Point(...)`: lower the bundle.
    const lowered = await transform(await bundleForXs(entry), { target: "es2022", supported: { "class-static-field": false } });
    await xs.evaluate(lowered.code);
    const empty = await xs.evaluate("new Uint8Array([1]).buffer");
    const overhead = empty.meters.compute;
    /** An XS command with its meters and wall time (the meter counts a BigInt operation as one). */
    const timed = async (source: string) => {
      const t0 = performance.now();
      const r = await xs.evaluate(source);
      return { ...r, ms: performance.now() - t0 };
    };
    const verify = async () => {
      const r = await timed("new Uint8Array([__bench.verify() ? 1 : 0]).buffer");
      if (r.result[0] !== 1) throw new Error("XS did not verify the signature");
      return { ...r.meters, ms: r.ms };
    };
    const first = await verify();
    const second = await verify();
    await xs.evaluate(`__bench.fill(${XS_HASH_KB * 1024})`);
    const hashed = await timed("__bench.sha256().buffer");
    const expected = hex(sha256(xsFill(XS_HASH_KB * 1024)));
    if (hex(hashed.result) !== expected) {
      failed = true;
      console.log(`  XS sha256 ${hex(hashed.result)} != Node's ${expected}`);
    }
    const perKb = (hashed.meters.compute - overhead) / XS_HASH_KB;
    const net = (n: number) => (n - overhead).toLocaleString("en-US");
    console.log(`XS engine (xsnap-worker), compute meter (net of an empty command's ${overhead}):`);
    const heap = (n: number) => n.toLocaleString("en-US");
    const ms = (n: number) => `${n.toFixed(1)} ms wall`;
    console.log(`  p256 verify, first:       ${net(first.compute).padStart(11)} compute, heap ${heap(first.currentHeapCount)} slots, ${ms(first.ms)}`);
    console.log(`  p256 verify, second:      ${net(second.compute).padStart(11)} compute, heap ${heap(second.currentHeapCount)} slots, ${ms(second.ms)}`);
    if (first.compute === second.compute) {
      console.log("    (the same: @noble/curves 2.x verify is one-shot Strauss-Shamir wNAF and builds no cached base table)");
    }
    console.log(`  @noble sha256 over ${XS_HASH_KB} KB: ${net(hashed.meters.compute).padStart(11)} compute, ${Math.round(perKb).toLocaleString("en-US")} per KB, ${ms(hashed.ms)}`);
    const perMbCompute = (perKb * 1024) / (second.compute - overhead);
    const perMbWall = (hashed.ms * (1024 / XS_HASH_KB)) / second.ms;
    console.log(`  pure-JS SHA-256 of a 1 MB image = ${perMbCompute.toFixed(0)}x one verification in compute, ${perMbWall.toFixed(0)}x in wall time`);
    summary = `digest: node:crypto sha256 ${ratio("node:crypto sha256")}x sha256sum, @noble ${ratio("@noble sha256 on Node")}x; XS p256 verify ${net(second.compute)} compute (first ${net(first.compute)}), XS JS sha256 ${Math.round(perKb).toLocaleString("en-US")} compute/KB (1 MB = ${perMbCompute.toFixed(0)} verifies)`;
  } finally {
    await xs.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(failed ? `${summary}; DIGESTS DISAGREE` : summary);
process.exitCode = failed ? 1 : 0;

/** The bytes __bench.fill makes on XS, made again on Node to check XS's digest. */
function xsFill(n: number): Uint8Array {
  const data = new Uint8Array(n);
  let x = 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return data;
}
