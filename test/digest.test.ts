/**
 * Digests: the contract suite for the pure-JS fallback on Node and on XS, the same suite for the
 * simulator host's node:crypto digests (Node only), and the two hosts agreeing on 1 MB.
 */
import { describe, expect, it } from "vitest";
import { contract } from "./contract/vitest.ts";
import type { Suite } from "./contract/harness.ts";
import { pattern } from "./contract/pattern.ts";
import noble, { digestSuite } from "./contract/digest.contract.ts";
import { nobleDigests } from "../modules/verify/noble-digest.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import type { DigestAlgorithm } from "../modules/ports/digest.ts";

/** Registers a suite on Node only, for factories that exist only on a Node host. */
export function nodeOnly(suite: Suite): void {
  describe(`${suite.name} [node]`, () => {
    for (const c of suite.cases) it(c.name, c.run);
  });
}

contract(noble, new URL("./contract/digest.contract.ts", import.meta.url));
nodeOnly(digestSuite("digests (node:crypto)", nodeDigests));

describe("digest hosts agree", () => {
  const data = pattern(1 << 20, 0x1234567);
  const algorithms: DigestAlgorithm[] = ["sha256", "sha1", "md5", "crc32"];
  for (const algorithm of algorithms) {
    it(`${algorithm}: node:crypto and @noble agree on 1 MB streamed in uneven blocks`, () => {
      const node = nodeDigests.create(algorithm);
      const js = nobleDigests.create(algorithm);
      for (let at = 0, i = 0; at < data.length; i++) {
        const n = Math.min([4096, 1, 1460, 65, 0, 32768][i % 6], data.length - at);
        node.update(data.subarray(at, at + n));
        js.update(data.subarray(at, at + n));
        at += n;
      }
      expect(node.finish()).toEqual(js.finish());
    });
  }
});
