/**
 * The Digest port (modules/ports/digest.ts): published known answers for every algorithm,
 * streaming in blocks of any size and any kind of view, and the end of a digest at finish().
 * `digestSuite` takes any DigestFactory, so each host's digests meet the same cases; the default
 * export is the pure-JS fallback. Portable: runs on Node and on XS.
 */
import { suite, type Suite } from "./harness.ts";
import { equal, hex, ok, throwsCode } from "./assert.ts";
import { pattern } from "./pattern.ts";
import type { Digest, DigestAlgorithm, DigestFactory } from "../../modules/ports/digest.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";

/** ASCII text as bytes (no TextEncoder: the suite uses only the language). */
function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const ABC448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

/**
 * Known answers, [message, digest in hex]:
 * - SHA-256: FIPS 180-2 appendix B.1 ("abc"), B.2 (the 448-bit message), B.3 (one million "a");
 *   the empty message from NIST CAVP SHA256ShortMsg.rsp (Len = 0).
 * - SHA-1: FIPS 180-2 appendix A.1 ("abc"), A.2 (448-bit), A.3 (one million "a");
 *   the empty message from NIST CAVP SHA1ShortMsg.rsp (Len = 0).
 * - MD5: RFC 1321 appendix A.5, the whole test suite.
 * - CRC-32 (IEEE, reflected, as zlib): the catalogue check value over "123456789"
 *   (Greg Cook's CRC RevEng catalogue, CRC-32/ISO-HDLC: check=0xcbf43926), the empty message 0,
 *   and the widely published pangram value 0x414fa339.
 */
const VECTORS: Record<DigestAlgorithm, [string, string][]> = {
  sha256: [
    ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
    [ABC448, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"],
  ],
  sha1: [
    ["", "da39a3ee5e6b4b0d3255bfef95601890afd80709"],
    ["abc", "a9993e364706816aba3e25717850c26c9cd0d89d"],
    [ABC448, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"],
  ],
  md5: [
    ["", "d41d8cd98f00b204e9800998ecf8427e"],
    ["a", "0cc175b9c0f1b6a831c399e269772661"],
    ["abc", "900150983cd24fb0d6963f7d28e17f72"],
    ["message digest", "f96b697d7cb7938d525a2f31aaf161d0"],
    ["abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"],
    ["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"],
    ["12345678901234567890123456789012345678901234567890123456789012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a"],
  ],
  crc32: [
    ["", "00000000"],
    ["123456789", "cbf43926"],
    ["The quick brown fox jumps over the lazy dog", "414fa339"],
  ],
};

/** FIPS 180-2 B.3 / A.3: one million repetitions of "a". */
const MILLION_A: Partial<Record<DigestAlgorithm, string>> = {
  sha256: "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  sha1: "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
};

const LENGTHS: Record<DigestAlgorithm, number> = { sha256: 32, sha1: 20, md5: 16, crc32: 4 };
const ALGORITHMS: DigestAlgorithm[] = ["sha256", "sha1", "md5", "crc32"];

/** Odd block sizes around the 64-byte block of all three hashes, and far from it. */
const ODD = [1, 3, 61, 64, 65, 1000, 4097];

function oneShot(digests: DigestFactory, algorithm: DigestAlgorithm, data: Uint8Array): string {
  const d = digests.create(algorithm);
  d.update(data);
  return hex(d.finish());
}

/** Splits `data` into blocks of the sizes in `sizes`, repeating them until the data runs out. */
function blocks(data: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length], data.length - at);
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

/**
 * Hands `block` to `d` as the i-th kind of view, with an empty update of another kind before it:
 * a Uint8Array subarray (a non-zero byteOffset into a larger buffer), a fresh ArrayBuffer, a
 * DataView with a non-zero byteOffset, and a Uint8Array over a padded buffer.
 */
function updateAs(d: Digest, block: Uint8Array, i: number): void {
  const kind = i % 4;
  const padded = (front: number) => {
    const buffer = new ArrayBuffer(front + block.length + 5);
    new Uint8Array(buffer).fill(0xa5);
    new Uint8Array(buffer, front, block.length).set(block);
    return buffer;
  };
  if (kind === 0) {
    d.update(new ArrayBuffer(0));
    d.update(block);
  } else if (kind === 1) {
    d.update(new DataView(new ArrayBuffer(8), 3, 0));
    d.update(block.slice().buffer);
  } else if (kind === 2) {
    d.update(new Uint8Array(16).subarray(7, 7));
    d.update(new DataView(padded(11), 11, block.length));
  } else {
    d.update(new Uint8Array(0));
    d.update(new Uint8Array(padded(3), 3, block.length));
  }
}

function streamed(digests: DigestFactory, algorithm: DigestAlgorithm, data: Uint8Array, sizes: number[]): string {
  const d = digests.create(algorithm);
  blocks(data, sizes).forEach((b, i) => updateAs(d, b, i));
  return hex(d.finish());
}

export function digestSuite(name: string, digests: DigestFactory): Suite {
  return suite(name, (test) => {
    for (const algorithm of ALGORITHMS) {
      test(`${algorithm}: published known answers, in one block and byte by byte`, () => {
        for (const [message, expected] of VECTORS[algorithm]) {
          equal(oneShot(digests, algorithm, ascii(message)), expected, `${algorithm}("${message}")`);
          equal(streamed(digests, algorithm, ascii(message), [1]), expected, `${algorithm}("${message}") byte by byte`);
          equal(streamed(digests, algorithm, ascii(message), [3, 7]), expected, `${algorithm}("${message}") in 3s and 7s`);
        }
      });

      const million = MILLION_A[algorithm];
      if (million !== undefined) {
        test(`${algorithm}: one million 'a' streamed in blocks of ${ODD.join(", ")} bytes`, () => {
          const source = new Uint8Array(4097 + 13).fill(0x61);
          const d = digests.create(algorithm);
          let left = 1_000_000;
          for (let i = 0; left > 0; i++) {
            const n = Math.min(ODD[i % ODD.length], left);
            d.update(source.subarray(13 - (i % 13), 13 - (i % 13) + n));
            left -= n;
          }
          equal(hex(d.finish()), million, `${algorithm} of one million 'a'`);
        });
      }

      test(`${algorithm}: odd block sizes and every kind of view give the one-shot digest`, () => {
        const data = pattern(20_000, 0x5eed);
        const whole = oneShot(digests, algorithm, data);
        const schedules = [ODD, ODD.slice().reverse(), [63], [64], [65], [55, 56, 57], [7, 4096, 1]];
        for (const sizes of schedules) equal(streamed(digests, algorithm, data, sizes), whole, `blocks of ${sizes.join(", ")}`);
      });

      test(`${algorithm}: every length around the padding boundary, split anywhere`, () => {
        const data = pattern(140, 0xb10c);
        for (let n = 0; n <= data.length; n++) {
          const message = data.subarray(0, n);
          const whole = oneShot(digests, algorithm, message);
          const cut = (n * 7) % (n + 1);
          const d = digests.create(algorithm);
          d.update(message.subarray(0, cut));
          d.update(message.subarray(cut));
          equal(hex(d.finish()), whole, `${n} bytes split at ${cut}`);
        }
      });

      test(`${algorithm}: finish returns ${LENGTHS[algorithm]} bytes in a plain Uint8Array`, () => {
        const out = digests.create(algorithm).finish();
        ok(out instanceof Uint8Array, "finish returns a Uint8Array");
        equal(Object.getPrototypeOf(out), Uint8Array.prototype, "the Uint8Array prototype (not a subclass)");
        equal(out.length, LENGTHS[algorithm], "digest length");
        equal(out.byteLength, out.buffer.byteLength, "the digest owns its buffer");
      });

      test(`${algorithm}: finish twice throws bad-argument`, () => {
        const d = digests.create(algorithm);
        d.update(ascii("abc"));
        d.finish();
        throwsCode(() => d.finish(), "bad-argument", "finished");
      });

      test(`${algorithm}: update after finish throws bad-argument, even of 0 bytes`, () => {
        const d = digests.create(algorithm);
        d.finish();
        throwsCode(() => d.update(ascii("abc")), "bad-argument", "finished");
        throwsCode(() => d.update(new Uint8Array(0)), "bad-argument", "finished");
        throwsCode(() => d.finish(), "bad-argument", "finished");
      });

      test(`${algorithm}: update keeps nothing of the caller's buffer, which may be reused at once`, () => {
        const data = pattern(3000, 0xcafe);
        const whole = oneShot(digests, algorithm, data);
        const reused = new Uint8Array(333);
        const d = digests.create(algorithm);
        for (const b of blocks(data, [333])) {
          reused.set(b);
          d.update(reused.subarray(0, b.length));
          reused.fill(0xee);
        }
        equal(hex(d.finish()), whole, "digest with a reused read buffer");
      });

      test(`${algorithm}: two digests at once do not share state`, () => {
        const a = pattern(5000, 1);
        const b = pattern(5000, 2);
        const da = digests.create(algorithm);
        const db = digests.create(algorithm);
        blocks(a, [100]).forEach((block, i) => {
          da.update(block);
          db.update(b.subarray(i * 100, i * 100 + 100));
        });
        equal(hex(db.finish()), oneShot(digests, algorithm, b), "second digest");
        equal(hex(da.finish()), oneShot(digests, algorithm, a), "first digest");
      });
    }

    test("create of an unknown algorithm throws bad-argument naming it", () => {
      for (const bad of ["sha512", "SHA256", "sha-256", "", "toString", "__proto__", "constructor"]) {
        throwsCode(() => digests.create(bad as DigestAlgorithm), "bad-argument", `'${bad}'`);
      }
    });
  });
}

export default digestSuite("digests (noble)", nobleDigests);
