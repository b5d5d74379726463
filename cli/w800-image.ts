/**
 * W800 images for `xs-ota image`: packing (plain, or XZ-compressed inside an outer header) and
 * printing a header, with the layout from partitions/w800-2mb.csv. Node only.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Io } from "./main.ts";
import { OtaError, isOtaError } from "../modules/errors.ts";
import { parsePartitionCsv } from "../modules/esp-idf/partition-table.ts";
import { W800_HEADER_SIZE, W800_MAGIC, checkHeader, decodeAttributes, decodeHeader, w800Layout, type W800Header, type W800Layout } from "../modules/w800/header.ts";
import { checkW800Image } from "../modules/w800/format.ts";
import { packW800Image } from "../modules/w800/pack.ts";
import { NorFlash } from "../hosts/sim/nor-flash.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { xzCompress, xzDecompress } from "../hosts/sim/xz.ts";

export const W800_TABLE_FILE = fileURLToPath(new URL("../partitions/w800-2mb.csv", import.meta.url));

export function shippedW800Layout(): W800Layout {
  return w800Layout(parsePartitionCsv(readFileSync(W800_TABLE_FILE, "utf8")).partitions);
}

/**
 * The inner, uncompressed image (as packW800Image builds it) compressed with hosts/sim/xz.ts's
 * options (LZMA2, 32 KiB dictionary, CRC32 check) and wrapped in an outer header: compress_type
 * 1, img_len and org_checksum of the XZ stream, the same version and addresses.
 */
export function packW800Xz(o: { version: string; body: Uint8Array; layout: W800Layout; updNo?: number }): Uint8Array {
  const inner = packW800Image({ ...o, digests: nodeDigests });
  return packW800Image({ ...o, body: xzCompress(inner), compressType: 1, digests: nodeDigests });
}

export function isW800Image(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) === W800_MAGIC;
}

const hex = (n: number) => (n >>> 0).toString(16).padStart(8, "0");

function printHeader(h: W800Header, io: Io, indent = ""): void {
  const a = decodeAttributes(h.imgAttr);
  io.out(`${indent}magic_no: ${hex(h.magic)}`);
  io.out(`${indent}img_attr: ${hex(h.imgAttr)} (img_type ${a.imgType}, compress_type ${a.compressType}${a.compressType === 1 ? " xz" : ""})`);
  io.out(`${indent}img_addr: ${hex(h.imgAddr)}`);
  io.out(`${indent}img_len: ${h.imgLen} bytes`);
  io.out(`${indent}img_header_addr: ${hex(h.imgHeaderAddr)}`);
  io.out(`${indent}upgrade_img_addr: ${hex(h.upgradeImgAddr)}`);
  io.out(`${indent}org_checksum: ${hex(h.orgChecksum)}`);
  io.out(`${indent}upd_no: ${h.updNo}`);
  io.out(`${indent}ver: ${h.version}`);
  io.out(`${indent}hd_checksum: ${hex(h.hdChecksum)}`);
}

/** Checks `bytes` as app_ota would hold them and prints the header (and an XZ image's inner one). */
export function w800Info(bytes: Uint8Array, io: Io): number {
  if (bytes.length < W800_HEADER_SIZE) {
    io.out(`invalid: truncated: a W800 image starts with a ${W800_HEADER_SIZE}-byte header, the file has ${bytes.length}`);
    return 1;
  }
  const layout = shippedW800Layout();
  printHeader(decodeHeader(bytes), io);
  try {
    const header = checkStaged(bytes, layout);
    if (decodeAttributes(header.imgAttr).compressType === 1) {
      let inner: Uint8Array;
      try {
        inner = xzDecompress(bytes.subarray(W800_HEADER_SIZE, W800_HEADER_SIZE + header.imgLen));
      } catch (e) {
        io.out(`invalid: the XZ stream does not decompress: ${(e as Error).message}`);
        return 1;
      }
      io.out(`inner image (${inner.length} bytes):`);
      const h = checkHeader(inner, layout, "installed");
      printHeader(h, io, "  ");
      checkStaged(inner, layout, h.imgLen);
    }
    io.out("valid");
    return 0;
  } catch (e) {
    if (isOtaError(e, "image-invalid")) {
      io.out(`invalid: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

/** The header and body CRC, over a flash holding the bytes (the rest erased). */
function checkStaged(bytes: Uint8Array, layout: W800Layout, bodyLength?: number): W800Header {
  const size = Math.max(0x1000, Math.ceil(bytes.length / 0x1000) * 0x1000);
  const data = new Uint8Array(size).fill(0xff);
  data.set(bytes);
  if (bodyLength === undefined) {
    const header = checkW800Image(new NorFlash({ size, data }), layout, "staged", nodeDigests);
    if (W800_HEADER_SIZE + header.imgLen > bytes.length) {
      throw new OtaError("image-invalid", `truncated: the header and body take ${W800_HEADER_SIZE + header.imgLen} bytes, the file has ${bytes.length}`);
    }
    return header;
  }
  // An inner image has its body right after its header in the stream; installed, it moves to +0x400.
  const installed = new Uint8Array(Math.max(0x1000, Math.ceil((0x400 + bodyLength) / 0x1000) * 0x1000)).fill(0xff);
  installed.set(bytes.subarray(0, W800_HEADER_SIZE));
  installed.set(bytes.subarray(W800_HEADER_SIZE), 0x400);
  if (bytes.length !== W800_HEADER_SIZE + bodyLength) {
    throw new OtaError("image-invalid", `the inner image is ${bytes.length} bytes; its header says ${W800_HEADER_SIZE + bodyLength}`);
  }
  return checkW800Image(new NorFlash({ size: installed.length, data: installed }), layout, "installed", nodeDigests);
}
