/** Version rules, anti-rollback, the unsigned-image switch, and the StateStore they stand on. */
import { suite } from "./harness.ts";
import { bytesEqual, deepEqual, equal, ok, throwsCode } from "./assert.ts";
import { checkNewer, compareVersions, formatVersion, parseVersion, toAppVersion32 } from "../../modules/verify/version.ts";
import { SecurityFloor, acceptUnsigned, checkCandidate } from "../../modules/verify/policy.ts";
import { espIdfFormat } from "../../modules/esp-idf/format.ts";
import { IMAGE_PREFIX_SIZE, packImage } from "../../modules/esp-idf/image.ts";
import { MemoryStateStore } from "../../hosts/sim/state-store.ts";
import { sha256 } from "./boot-fixture.ts";

const cmp = (a: string, b: string) => compareVersions(parseVersion(a), parseVersion(b));
const prefix = (version: string, secureVersion: number) =>
  packImage({ version, secureVersion, payload: new Uint8Array(16), sha256 }).subarray(0, IMAGE_PREFIX_SIZE);

export default suite("update policy", (test) => {
  test("semantic versions compare by major, minor, patch", () => {
    equal(cmp("1.0.1", "1.0.0"), 1);
    equal(cmp("1.0.0", "1.0.1"), -1);
    equal(cmp("1.10.0", "1.9.9"), 1, "numeric, not text");
    equal(cmp("2.0.0", "1.99.99"), 1);
    equal(cmp("v1.0.2", "1.0.2"), 0, "nRF's v prefix");
    equal(cmp("2.1", "2.1.0"), 0, "missing patch is 0");
    equal(cmp("1.0.0+build.5", "1.0.0"), 0, "build metadata ignored");
  });

  test("pre-releases sort before their release, as semver says", () => {
    equal(cmp("1.0.0-rc.1", "1.0.0"), -1);
    equal(cmp("1.0.0-alpha", "1.0.0-alpha.1"), -1);
    equal(cmp("1.0.0-alpha.1", "1.0.0-alpha.beta"), -1, "numbers before words");
    equal(cmp("1.0.0-beta.2", "1.0.0-beta.11"), -1, "numeric identifiers compare as numbers");
    equal(cmp("1.0.0-rc.1", "0.9.9"), 1);
  });

  test("AWS AppVersion32: 0x%08x of major << 24 | minor << 16 | build, both ways", () => {
    equal(toAppVersion32(parseVersion("1.0.2")), "0x01000002");
    equal(toAppVersion32(parseVersion("255.255.65535")), "0xffffffff");
    deepEqual(parseVersion("0x01020003"), { major: 1, minor: 2, patch: 3, pre: [] });
    equal(cmp("0x01000002", "1.0.1"), 1);
    throwsCode(() => toAppVersion32(parseVersion("256.0.0")), "bad-argument", "8.8.16");
    throwsCode(() => toAppVersion32(parseVersion("1.0.65536")), "bad-argument");
  });

  test("malformed versions are refused with the reason", () => {
    throwsCode(() => parseVersion(""), "malformed");
    throwsCode(() => parseVersion("1"), "malformed", "major.minor");
    throwsCode(() => parseVersion("1.2.3.4"), "malformed");
    throwsCode(() => parseVersion("01.2.3"), "malformed", "leading zeros");
    throwsCode(() => parseVersion("1.x.3"), "malformed", "minor");
    throwsCode(() => parseVersion("1.2.3-"), "malformed", "pre-release");
    throwsCode(() => parseVersion("1.2.3-rc..1"), "malformed");
    throwsCode(() => parseVersion("1.2.3+"), "malformed", "build");
    throwsCode(() => parseVersion("9007199254740993.0.0"), "malformed");
    throwsCode(() => parseVersion("1.0.0 "), "malformed");
    throwsCode(() => parseVersion("x".repeat(65)), "malformed", "64");
    equal(formatVersion(parseVersion("v1.2.3-rc.1+b7")), "1.2.3-rc.1");
  });

  test("an update must be strictly newer: same version and downgrade are refused, saying which", () => {
    checkNewer("1.0.0", "1.0.1");
    throwsCode(() => checkNewer("1.0.1", "1.0.1"), "version-rejected", "already running");
    throwsCode(() => checkNewer("1.0.1", "1.0.0"), "version-rejected", "downgrade");
    checkNewer("1.0.0", "1.0.1-rc.1");
    throwsCode(() => checkNewer("1.0.1", "1.0.1-rc.1"), "version-rejected", "older");
    throwsCode(() => checkNewer("1.0.0", "banana"), "malformed");
  });

  test("anti-rollback: the minimum starts at 0 and refuses what is below it", () => {
    const floor = new SecurityFloor(new MemoryStateStore());
    equal(floor.minimum, 0);
    floor.check(0);
    floor.raise(3);
    floor.check(3);
    floor.check(4);
    throwsCode(() => floor.check(2), "security-version", "below the device minimum 3");
  });

  test("anti-rollback: the minimum only rises, and survives a restart", () => {
    const store = new MemoryStateStore();
    new SecurityFloor(store).raise(5);
    new SecurityFloor(store).raise(2);
    equal(new SecurityFloor(store).minimum, 5, "kept after a new instance on the same store");
    throwsCode(() => new SecurityFloor(store).raise(-1), "bad-argument");
    throwsCode(() => new SecurityFloor(store).raise(1.5), "bad-argument");
  });

  test("an ESP32 image is checked from its first 288 bytes, before anything is written", () => {
    const floor = new SecurityFloor(new MemoryStateStore());
    floor.raise(2);
    const desc = checkCandidate(espIdfFormat.parsePrefix(prefix("1.0.1", 2)), { runningVersion: "1.0.0", floor });
    equal(desc.version, "1.0.1");
    throwsCode(() => checkCandidate(espIdfFormat.parsePrefix(prefix("1.0.0", 2)), { runningVersion: "1.0.0", floor }), "version-rejected", "already running");
    throwsCode(() => checkCandidate(espIdfFormat.parsePrefix(prefix("0.9.0", 2)), { runningVersion: "1.0.0", floor }), "version-rejected", "downgrade");
    throwsCode(() => checkCandidate(espIdfFormat.parsePrefix(prefix("1.0.2", 1)), { runningVersion: "1.0.0", floor }), "security-version");
    throwsCode(() => checkCandidate(espIdfFormat.parsePrefix(prefix("1.0.1", 2).subarray(0, 100)), { runningVersion: "1.0.0", floor }), "image-invalid");
    const notImage = new Uint8Array(IMAGE_PREFIX_SIZE);
    throwsCode(() => checkCandidate(espIdfFormat.parsePrefix(notImage), { runningVersion: "1.0.0", floor }), "image-invalid", "magic");
  });

  test("unsigned images: refused by default, accepted in development with a warning every time", () => {
    const logged: string[] = [];
    const log = (level: string, message: string) => logged.push(`${level}: ${message}`);
    throwsCode(() => acceptUnsigned(false, log, "image 1.0.1"), "unsigned", "accepts only signed images");
    equal(logged.length, 0, "nothing logged when refused");
    acceptUnsigned(true, log, "image 1.0.1");
    acceptUnsigned(true, log, "image 1.0.2");
    equal(logged.length, 2, "one warning per use");
    ok(logged.every((l) => l.startsWith("warn: ") && l.includes("UNSIGNED")), "warnings say UNSIGNED");
  });

  test("state store: Preference limits on keys and values", () => {
    const s = new MemoryStateStore();
    s.set("k".repeat(15), new Uint8Array(3996));
    throwsCode(() => s.set("k".repeat(16), new Uint8Array(1)), "bad-argument", "15");
    throwsCode(() => s.set("", new Uint8Array(1)), "bad-argument");
    throwsCode(() => s.set("has space", new Uint8Array(1)), "bad-argument");
    // NVS takes 4000 bytes; the esp32 store leads each record with a 4-byte generation.
    throwsCode(() => s.set("big", new Uint8Array(3997)), "bad-argument", "3996");
    equal(s.get("big"), undefined, "a refused set stores nothing");
  });

  test("state store: values are copied in and out; delete and missing keys", () => {
    const s = new MemoryStateStore();
    const v = new Uint8Array([1, 2, 3]);
    s.set("job", v);
    v[0] = 9;
    bytesEqual(s.get("job")!, new Uint8Array([1, 2, 3]), "caller's later change not stored");
    s.get("job")![1] = 9;
    bytesEqual(s.get("job")!, new Uint8Array([1, 2, 3]), "reader's change not stored");
    s.set("job", new Uint8Array([4]));
    bytesEqual(s.get("job")!, new Uint8Array([4]), "replaced whole");
    s.delete("job");
    s.delete("job");
    equal(s.get("job"), undefined);
    equal(s.get("never"), undefined);
  });
});
