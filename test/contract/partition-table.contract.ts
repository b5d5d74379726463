/**
 * Partition tables: CSV rules, every checker error, binary format. Portable: runs on Node and on XS,
 * so tables are embedded as strings.
 */
import { md5 } from "@noble/hashes/legacy.js";
import { suite } from "./harness.ts";
import { bytesEqual, deepEqual, equal, ok, throwsCode } from "./assert.ts";
import {
  appSlots,
  checkPartitionTable,
  decodePartitionTable,
  encodePartitionTable,
  findPartition,
  parseFlashSize,
  parsePartitionCsv,
  requirePartition,
  subtypeName,
  typeName,
  type CheckOptions,
  type Partition,
  type TableError,
} from "../../modules/esp-idf/partition-table.ts";

/** A good A/B table; rows are lines 1-5. */
const AB = [
  "nvs,      data, nvs,   0x9000,   0x4000",
  "otadata,  data, ota,   0xd000,   0x2000",
  "phy_init, data, phy,   0xf000,   0x1000",
  "ota_0,    app,  ota_0, 0x10000,  0x100000",
  "ota_1,    app,  ota_1, 0x110000, 0x100000",
];

/** A good staging table (W800-like); the directive is line 1, rows are lines 2-5. */
const STAGING = [
  "# layout: staging",
  "secboot, data, 0x42,    0x0,     0x10000, readonly",
  "app_ota, data, 0x40,    0x10000, 0xC0000",
  "app,     app,  factory, 0xD0000, 0x110000",
  "user,    data, 0x43,    0x1E0000, 0x1A000",
];

/** The base rows with row `line` (1-based) replaced, or with rows appended when line is past the end. */
function edit(base: string[], line: number, row: string): string {
  const rows = base.slice();
  rows[line - 1] = row;
  return rows.join("\n");
}

function parseOk(csv: string): Partition[] {
  const t = parsePartitionCsv(csv);
  deepEqual(t.errors, [], "parse errors");
  return t.partitions;
}

function check(csv: string, options: CheckOptions = {}): TableError[] {
  const t = parsePartitionCsv(csv);
  deepEqual(t.errors, [], "parse errors");
  return checkPartitionTable(t.partitions, { layout: t.layout, flashSize: t.flashSize, ...options });
}

/** Exactly one error, on this line, whose message mentions every word. */
function oneError(errors: TableError[], line: number, ...words: string[]): void {
  equal(errors.length, 1, `error count in ${JSON.stringify(errors)}`);
  equal(errors[0].line, line, `error line in ${JSON.stringify(errors)}`);
  for (const w of words) ok(errors[0].message.includes(w), `message '${errors[0].message}' should mention '${w}'`);
}

function parseError(csv: string, line: number, ...words: string[]): void {
  const t = parsePartitionCsv(csv);
  oneError(t.errors, line, ...words);
}

const bytes = (...b: number[]) => Uint8Array.from(b);
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

export default suite("partition table", (test) => {
  // ---- CSV parsing ------------------------------------------------------------------------

  test("parses every column of a row", () => {
    const [p] = parseOk("ota_0, app, ota_0, 0x10000, 0x1E0000, encrypted");
    deepEqual(p, { name: "ota_0", type: 0, subtype: 0x10, offset: 0x10000, size: 0x1e0000, encrypted: true, readonly: false, line: 1 });
  });

  test("skips comments and blank lines, and line numbers count them", () => {
    const ps = parseOk("# Name, Type, SubType, Offset, Size, Flags\n\n   \n  # indented comment\nnvs, data, nvs, 0x9000, 0x4000\r\n\r\nphy, data, phy, 0xd000, 0x1000\n");
    equal(ps.length, 2);
    equal(ps[0].line, 5, "first row line");
    equal(ps[1].line, 7, "second row line (CRLF counts once)");
  });

  test("trims every field", () => {
    const [p] = parseOk("   my nvs  ,\tdata\t,  nvs ,  0x9000 , 0x4000  ,  readonly  ");
    equal(p.name, "my nvs");
    equal(p.subtype, 2);
    equal(p.readonly, true);
  });

  test("five columns are enough; an empty sixth means no flags", () => {
    const ps = parseOk("a, data, nvs, 0x9000, 0x1000\nb, data, nvs, 0xa000, 0x1000,");
    equal(ps[0].encrypted || ps[0].readonly, false);
    equal(ps[1].encrypted || ps[1].readonly, false);
  });

  test("flags are separated by ':'", () => {
    const [p] = parseOk("keys, data, nvs_keys, 0x9000, 0x1000, encrypted:readonly");
    equal(p.encrypted, true);
    equal(p.readonly, true);
  });

  test("type is app, data or a number in hex or decimal", () => {
    const ps = parseOk("a, APP, factory, 0x10000, 0x10000\nb, data, nvs, 0x20000, 0x1000\nxs, 0x40, 1, 0x21000, 0x1000\nc, 65, 0x22, 0x22000, 0x1000");
    deepEqual(ps.map((p) => [p.type, p.subtype]), [[0, 0], [1, 2], [0x40, 1], [0x41, 0x22]]);
  });

  test("app subtype names: factory, ota_0..ota_15, test", () => {
    const rows = ["factory", ...Array.from({ length: 16 }, (_, i) => `ota_${i}`), "test"]
      .map((s, i) => `a${i}, app, ${s}, ${0x10000 * (i + 1)}, 0x10000`);
    const ps = parseOk(rows.join("\n"));
    deepEqual(ps.map((p) => p.subtype), [0x00, ...Array.from({ length: 16 }, (_, i) => 0x10 + i), 0x20]);
  });

  test("data subtype names", () => {
    const names = ["ota", "phy", "nvs", "coredump", "nvs_keys", "efuse", "undefined", "esphttpd", "fat", "spiffs", "littlefs"];
    const ps = parseOk(names.map((s, i) => `d${i}, data, ${s}, ${0x9000 + i * 0x2000}, 0x2000`).join("\n"));
    deepEqual(ps.map((p) => p.subtype), [0, 1, 2, 3, 4, 5, 6, 0x80, 0x81, 0x82, 0x83]);
  });

  test("an empty data subtype is 'undefined' (0x06)", () => {
    equal(parseOk("d, data, , 0x9000, 0x1000")[0].subtype, 0x06);
  });

  test("sizes and offsets: decimal, hex, K and M suffixes", () => {
    const ps = parseOk("a, data, nvs, 36864, 16K\nb, data, nvs, 0xd000, 4k\nc, app, ota_0, 1M, 2M\nd, data, nvs, 0x300000, 0x10K");
    deepEqual(ps.map((p) => [p.offset, p.size]), [[0x9000, 0x4000], [0xd000, 0x1000], [0x100000, 0x200000], [0x300000, 0x4000]]);
  });

  test("empty offsets follow the previous partition: from 0x9000, apps to 64 KB, data to 4 KB", () => {
    const ps = parseOk([
      "nvs,      data, nvs,   , 0x5000",
      "phy_init, data, phy,   , 0x800",
      "ota_0,    app,  ota_0, , 1M",
      "spare,    data, fat,   , 0x1000",
      "fixed,    data, fat,   0x200000, 0x1800",
      "after,    data, fat,   , 0x1000",
    ].join("\n"));
    deepEqual(ps.map((p) => p.offset), [0x9000, 0xe000, 0x10000, 0x110000, 0x200000, 0x202000]);
  });

  test("the flash-size directive sets the flash size", () => {
    equal(parsePartitionCsv("# flash-size: 4MB\nnvs, data, nvs, 0x9000, 0x4000").flashSize, 0x400000);
    equal(parsePartitionCsv("nvs, data, nvs, 0x9000, 0x4000\n#flash-size:2MB").flashSize, 0x200000);
    equal(parsePartitionCsv("# flash-size: 8MB").flashSize, 0x800000);
    equal(parsePartitionCsv("# FLASH-SIZE: 16MB").flashSize, 0x1000000);
    equal(parsePartitionCsv("nvs, data, nvs, 0x9000, 0x4000").flashSize, undefined);
    equal(parseFlashSize("0x400000"), 0x400000);
    equal(parseFlashSize("3MB"), undefined);
  });

  test("a bad flash-size directive is an error on its line", () => {
    parseError("nvs, data, nvs, 0x9000, 0x4000\n# flash-size: 3MB", 2, "flash-size", "3MB");
  });

  test("the layout directive chooses the layout; ab is the default", () => {
    equal(parsePartitionCsv("# layout: staging").layout, "staging");
    equal(parsePartitionCsv("# layout: ab").layout, "ab");
    equal(parsePartitionCsv("nvs, data, nvs, 0x9000, 0x4000").layout, "ab");
    // Staging tables have no table at 0x8000, so auto offsets start at 0.
    equal(parsePartitionCsv("# layout: staging\nboot, data, 0x41, , 0x1000").partitions[0].offset, 0);
  });

  test("an unknown layout is an error on its line", () => {
    parseError("\n# layout: xip", 2, "layout", "xip");
  });

  test("a directive given twice is an error on the second", () => {
    parseError("# flash-size: 4MB\n# flash-size: 8MB", 2, "flash-size", "line 1");
  });

  test("readable type and subtype names", () => {
    equal(typeName(0), "app");
    equal(typeName(1), "data");
    equal(typeName(0x40), "0x40");
    equal(subtypeName(0, 0x11), "ota_1");
    equal(subtypeName(1, 0x82), "spiffs");
    equal(subtypeName(0x40, 1), "0x01");
  });

  // ---- CSV parse errors ------------------------------------------------------------------------

  test("parse error: a size that is not a number", () => {
    parseError("nvs, data, nvs, 0x9000, 0x4000\nbad, data, nvs, 0xd000, 12abc", 2, "size", "12abc");
  });

  test("parse error: an offset that is not a number", () => {
    parseError("bad, data, nvs, 0x9g00, 0x4000", 1, "offset", "0x9g00");
  });

  test("parse error: an empty size", () => {
    parseError("bad, data, nvs, 0x9000, ", 1, "size");
  });

  test("parse error: an unknown type name", () => {
    parseError("# comment\nbad, code, factory, 0x10000, 0x10000", 2, "type", "code");
  });

  test("parse error: a type out of range", () => {
    parseError("bad, 0xff, 0, 0x10000, 0x10000", 1, "type", "0xff");
  });

  test("parse error: an unknown subtype name", () => {
    parseError("bad, app, ota_16, 0x10000, 0x10000", 1, "subtype", "ota_16");
  });

  test("parse error: a data subtype name on an app", () => {
    parseError("bad, app, nvs, 0x10000, 0x10000", 1, "subtype", "nvs");
  });

  test("parse error: an app without a subtype", () => {
    parseError("bad, app, , 0x10000, 0x10000", 1, "subtype");
  });

  test("parse error: too few columns", () => {
    parseError("nvs, data, nvs, 0x9000", 1, "columns", "4");
  });

  test("parse error: too many columns", () => {
    parseError("nvs, data, nvs, 0x9000, 0x4000, readonly, extra", 1, "columns", "7");
  });

  test("parse error: a name longer than 16 bytes", () => {
    parseOk("sixteen_chars_ok, data, nvs, 0x9000, 0x4000");
    parseError("seventeen_chars_x, data, nvs, 0x9000, 0x4000", 1, "seventeen_chars_x", "16");
    // Bytes, not characters: 9 two-byte characters are 18 bytes.
    parseError("ééééééééé, data, nvs, 0x9000, 0x4000", 1, "18 bytes");
  });

  test("parse error: an empty name", () => {
    parseError(" , data, nvs, 0x9000, 0x4000", 1, "name");
  });

  test("parse error: a name with a control character (the binary table would cut it at a NUL)", () => {
    parseError("\u0000app1, app, ota_1, 0x10000, 1M", 1, "'\\u{0}app1'", "control");
  });

  test("parse error: an unknown flag", () => {
    parseError("nvs, data, nvs, 0x9000, 0x4000, encrypted:secret", 1, "flag", "secret");
  });

  test("parse errors come back for every bad line, in line order", () => {
    const t = parsePartitionCsv("a, data, nvs, x, 0x1000\nok, data, nvs, 0x9000, 0x1000\nb, data, nvs, 0xa000, y\n# layout: nope");
    deepEqual(t.errors.map((e) => e.line), [1, 3, 4]);
    equal(t.partitions.length, 1);
  });

  // ---- checker: good tables --------------------------------------------------------------------

  test("a good A/B table has no errors", () => {
    deepEqual(check(AB.join("\n"), { flashSize: 0x400000 }), []);
  });

  test("the shipped 4 MB layout checks clean and fills the flash", () => {
    const csv = [
      "# flash-size: 4MB",
      "nvs,      data, nvs,   0x9000,   0x4000,",
      "otadata,  data, ota,   0xd000,   0x2000,",
      "phy_init, data, phy,   0xf000,   0x1000,",
      "ota_0,    app,  ota_0, 0x10000,  0x1E0000,",
      "ota_1,    app,  ota_1, 0x1F0000, 0x1E0000,",
      "xs,       0x40, 1,     0x3D0000, 0x30000,",
    ].join("\n");
    deepEqual(check(csv), []);
    const xs = findPartition(parseOk(csv), "xs");
    ok(xs !== undefined, "xs partition");
    equal(xs.offset + xs.size, 0x400000, "end of xs");
  });

  test("a good staging table has no errors", () => {
    deepEqual(check(STAGING.join("\n"), { flashSize: 0x200000 }), []);
  });

  // ---- checker: every error ------------------------------------------------------------------

  test("check: overlapping partitions name both", () => {
    const errors = check(edit(AB, 3, "phy_init, data, phy, 0xe000, 0x1000"));
    oneError(errors, 3, "phy_init", "otadata", "overlaps", "line 2");
  });

  test("check: app offset not 64 KB aligned", () => {
    const errors = check(edit(AB, 5, "ota_1, app, ota_1, 0x118000, 0x100000"));
    oneError(errors, 5, "ota_1", "0x118000", "0x10000");
  });

  test("check: a staging layout's app partition needs only 4 KB alignment", () => {
    deepEqual(check(edit(STAGING, 4, "app,     app,  factory, 0xD1000, 0x10F000")), []);
    oneError(check(edit(STAGING, 4, "app,     app,  factory, 0xD0800, 0x10F000")), 4, "app", "0xd0800", "0x1000");
  });

  test("check: data offset not 4 KB aligned", () => {
    const errors = check(edit(AB, 3, "phy_init, data, phy, 0xf800, 0x800"));
    // 0x800 is also not a whole sector: two separate errors on the same line.
    deepEqual(errors.map((e) => e.line), [3, 3]);
    ok(errors.some((e) => e.message.includes("0xf800") && e.message.includes("0x1000")), JSON.stringify(errors));
  });

  test("check: size not a multiple of 0x1000", () => {
    oneError(check(edit(AB, 1, "nvs, data, nvs, 0x9000, 0x3800")), 1, "nvs", "0x3800", "multiple of 0x1000");
  });

  test("check: size 0", () => {
    oneError(check(edit(AB, 1, "nvs, data, nvs, 0x9000, 0")), 1, "nvs", "size 0");
  });

  test("check: a partition below 0x9000 overlaps the bootloader and table", () => {
    oneError(check(edit(AB, 1, "nvs, data, nvs, 0x8000, 0x4000")), 1, "nvs", "0x8000", "partition table");
  });

  test("check: the staging layout has no region below 0x9000", () => {
    deepEqual(check(STAGING.join("\n")).filter((e) => e.message.includes("0x9000")), []);
  });

  test("check: a partition ending past the flash size", () => {
    const csv = "# flash-size: 2MB\n" + edit(AB, 5, "ota_1, app, ota_1, 0x110000, 0x100000");
    oneError(check(csv), 6, "ota_1", "0x210000", "2 MB");
    // --flash-size style override wins over the directive.
    deepEqual(check(csv, { flashSize: 0x400000 }), []);
  });

  test("check: duplicate names", () => {
    oneError(check(edit(AB, 3, "nvs, data, phy, 0xf000, 0x1000")), 3, "duplicate", "nvs", "line 1");
  });

  test("check: the same app subtype twice", () => {
    oneError(check(edit(AB, 5, "ota_1, app, ota_0, 0x110000, 0x100000")), 5, "ota_0", "ota_1", "twice");
  });

  test("check: otadata must be exactly 0x2000", () => {
    const errors = check(edit(AB, 2, "otadata, data, ota, 0xd000, 0x1000"));
    oneError(errors, 2, "otadata", "0x1000", "0x2000");
  });

  test("check: more than one otadata", () => {
    const errors = check(AB.join("\n") + "\notadata2, data, ota, 0x210000, 0x2000");
    oneError(errors, 6, "more than one otadata", "otadata2");
  });

  test("check: A/B layout without otadata", () => {
    oneError(check(edit(AB, 2, "# no otadata")), 0, "otadata");
  });

  test("check: A/B layout with one app slot", () => {
    oneError(check(edit(AB, 5, "# no ota_1")), 4, "two", "ota_N", "found 1");
  });

  test("check: A/B layout with no app slot at all", () => {
    oneError(check(AB.slice(0, 3).join("\n") + "\nfactory, app, factory, 0x10000, 0x100000"), 0, "two", "found 0");
  });

  test("check: A/B slots must start at ota_0", () => {
    const csv = edit(edit(AB, 4, "ota_1, app, ota_1, 0x10000, 0x100000").split("\n"), 5, "ota_2, app, ota_2, 0x110000, 0x100000");
    oneError(check(csv), 4, "ota_1", "ota_0 is missing");
  });

  test("check: A/B slots without gaps", () => {
    oneError(check(edit(AB, 5, "ota_2, app, ota_2, 0x110000, 0x100000")), 5, "ota_2", "ota_1 is missing");
  });

  test("check: staging layout without app_ota", () => {
    oneError(check(edit(STAGING, 3, "# none")), 0, "app_ota");
  });

  test("check: a staging directive names the staging partition", () => {
    const renamed = ["# staging: ota_bank", ...STAGING.slice(0, 2), "ota_bank, data, 0x40, 0x10000, 0xC0000", ...STAGING.slice(3)].join("\n");
    equal(parsePartitionCsv(renamed).staging, "ota_bank");
    deepEqual(check(renamed, { staging: parsePartitionCsv(renamed).staging }), []);
    oneError(check(renamed), 0, "app_ota");
    oneError(check(STAGING.join("\n"), { staging: "ota_bank" }), 0, "ota_bank");
  });

  test("check: staging partition must be data", () => {
    const errors = check(edit(STAGING, 3, "app_ota, 0x40, 0, 0x10000, 0xC0000"));
    oneError(errors, 3, "app_ota", "data", "0x40");
  });

  test("check: staging layout with two app partitions", () => {
    const errors = check(STAGING.join("\n") + "\napp2, app, ota_0, 0x200000, 0x10000");
    oneError(errors, 6, "app2", "one app");
  });

  test("check: staging layout without an app partition", () => {
    oneError(check(edit(STAGING, 4, "# none")), 0, "app partition");
  });

  test("check: staging layout with otadata", () => {
    const errors = check(STAGING.join("\n") + "\notadata, data, ota, 0x1FA000, 0x2000");
    oneError(errors, 6, "otadata", "staging");
  });

  test("check: several errors come back together, in line order", () => {
    const errors = check(["nvs, data, nvs, 0x8000, 0x3800", "ota_0, app, ota_0, 0x10000, 0x10000"].join("\n"));
    deepEqual(errors.map((e) => e.line), [0, 1, 1, 2]);
  });

  // ---- helpers ----------------------------------------------------------------------------------

  test("appSlots lists ota_N apps in N order", () => {
    const ps = parseOk("f, app, factory, 0x10000, 0x10000\nb, app, ota_1, 0x20000, 0x10000\na, app, ota_0, 0x30000, 0x10000\nd, data, nvs, 0x9000, 0x1000");
    deepEqual(appSlots(ps).map((p) => p.name), ["a", "b"]);
  });

  test("findPartition and requirePartition", () => {
    const ps = parseOk(AB.join("\n"));
    equal(findPartition(ps, "otadata")?.offset, 0xd000);
    equal(findPartition(ps, "nope"), undefined);
    equal(requirePartition(ps, "ota_1").offset, 0x110000);
    throwsCode(() => requirePartition(ps, "nope"), "partition-unknown", "nope");
  });

  // ---- binary table -----------------------------------------------------------------------------

  test("binary: an entry's bytes are exactly as ESP-IDF lays them out", () => {
    const table = encodePartitionTable(parseOk("ota_0, app, ota_0, 0x10000, 0x1E0000"), md5);
    bytesEqual(table.subarray(0, 32), bytes(
      0xaa, 0x50, 0x00, 0x10, // magic, type app, subtype ota_0
      0x00, 0x00, 0x01, 0x00, // offset 0x10000
      0x00, 0x00, 0x1e, 0x00, // size 0x1E0000
      ...ascii("ota_0"), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // label, NUL padded to 16
      0x00, 0x00, 0x00, 0x00, // flags
    ));
  });

  test("binary: flags, custom types and a 16-byte label", () => {
    const table = encodePartitionTable(parseOk("sixteen_chars_ok, 0x40, 0x22, 0x123000, 0x4000, encrypted:readonly"), md5);
    bytesEqual(table.subarray(0, 32), bytes(
      0xaa, 0x50, 0x40, 0x22,
      0x00, 0x30, 0x12, 0x00,
      0x00, 0x40, 0x00, 0x00,
      ...ascii("sixteen_chars_ok"), // no room for a NUL
      0x03, 0x00, 0x00, 0x00,
    ));
  });

  test("binary: the MD5 entry follows the entries, then 0xFF to 0xC00 bytes", () => {
    const table = encodePartitionTable(parseOk(AB.join("\n")), md5);
    equal(table.length, 0xc00, "table length");
    const at = AB.length * 32;
    bytesEqual(table.subarray(at, at + 16), bytes(0xeb, 0xeb, ...new Array<number>(14).fill(0xff)), "MD5 entry head");
    bytesEqual(table.subarray(at + 16, at + 32), md5(table.subarray(0, at)), "MD5 of the entries");
    ok(table.subarray(at + 32).every((b) => b === 0xff), "0xFF after the MD5 entry");
  });

  test("binary: encode then decode gives the table back", () => {
    const ps = parseOk(AB.join("\n") + "\nxs, 0x40, 1, 0x210000, 0x30000, readonly\nkeys, data, nvs_keys, 0x240000, 0x1000, encrypted");
    const back = decodePartitionTable(encodePartitionTable(ps, md5), md5);
    // Decoded partitions carry their entry number where parsed ones carry the CSV line.
    deepEqual(back, ps.map((p, i) => ({ ...p, line: i + 1 })));
  });

  test("binary: a table without an MD5 entry ends at the first blank entry", () => {
    const table = encodePartitionTable(parseOk(AB.join("\n")), md5);
    table.fill(0xff, AB.length * 32);
    equal(decodePartitionTable(table, md5).length, AB.length);
  });

  test("binary: an empty table decodes to no partitions", () => {
    deepEqual(decodePartitionTable(new Uint8Array(0xc00).fill(0xff), md5), []);
  });

  test("binary: a changed byte fails the MD5 check", () => {
    const table = encodePartitionTable(parseOk(AB.join("\n")), md5);
    table[32 * 3 + 8] ^= 0x01; // ota_0's size
    throwsCode(() => decodePartitionTable(table, md5), "partition-table", "MD5");
  });

  test("binary: a bad magic is rejected", () => {
    const table = encodePartitionTable(parseOk(AB.join("\n")), md5);
    table[32] = 0x55;
    throwsCode(() => decodePartitionTable(table, md5), "partition-table", "magic");
  });

  test("binary: at most 95 partitions fit", () => {
    const rows = Array.from({ length: 96 }, (_, i) => `p${i}, data, fat, ${0x10000 + i * 0x1000}, 0x1000`);
    throwsCode(() => encodePartitionTable(parseOk(rows.join("\n")), md5), "partition-table", "95");
    equal(decodePartitionTable(encodePartitionTable(parseOk(rows.slice(0, 95).join("\n")), md5), md5).length, 95);
  });
});
