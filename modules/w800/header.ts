/**
 * The W800 image header (wm_iot_sdk's wm_ota_header_t, components/wm_ota/include/wm_ota_ops.h):
 * 64 bytes, little-endian, in front of every image, staged or installed.
 *
 *   0 magic_no  4 img_attr  8 img_addr  12 img_len  16 img_header_addr  20 upgrade_img_addr
 *   24 org_checksum  28 upd_no  32 ver[16]  48 flags  52 _reserved1  56 next  60 hd_checksum
 *
 * CRCs: the SDK's wm_drv_crc32_reverse (seed 0xFFFFFFFF, reflected in and out) and wm_tool.c's
 * wm_tool_get_crc32 (seed 0xFFFFFFFF, the reflected table, no final xor) both leave the register
 * as it stands, and wm_iot_sdk's tools/wm/bin2img.py writes `binascii.crc32(data) ^ 0xFFFFFFFF`:
 * the value is the complement of zlib's CRC-32. hd_checksum covers bytes 0..59, org_checksum the
 * img_len bytes after the header (wm_ota_ops_write skips the first 64 bytes).
 */
import { OtaError } from "../errors.ts";
import { crc32 } from "../codec/crc32.ts";

export const W800_HEADER_SIZE = 64;
export const W800_MAGIC = 0xa0ffff9f;
/** The W800 maps its flash at this address; header addresses are bus addresses. */
export const W800_FLASH_BASE = 0x08000000;
/** Code starts this far after the image header (the vector table sits on a 1 KB boundary). */
export const W800_RUN_OFFSET = 0x400;
export const VERSION_BYTES = 16;

export type CompressType = 0 | 1;

/** Flash offsets and sizes of the two partitions the header addresses name. */
export interface W800Layout {
  app: { offset: number; size: number };
  appOta: { offset: number; size: number };
}

/** partitions/w800-2mb.csv, for callers that have no table at hand (tests check they agree). */
export const W800_2MB_LAYOUT: W800Layout = Object.freeze({
  app: Object.freeze({ offset: 0xf000, size: 0x122000 }),
  appOta: Object.freeze({ offset: 0x131000, size: 0xae000 }),
});

/** The layout from a partition table's `app` and `app_ota` entries. */
export function w800Layout(table: readonly { name: string; offset: number; size: number }[]): W800Layout {
  const find = (name: string) => {
    const p = table.find((e) => e.name === name);
    if (!p) throw new OtaError("partition-unknown", `the W800 layout needs a partition named '${name}'`);
    return { offset: p.offset, size: p.size };
  };
  return { app: find("app"), appOta: find("app_ota") };
}

export interface ImageAttributes {
  imgType: number;
  codeEncrypt: boolean;
  prikeySel: number;
  signature: boolean;
  gzip: boolean;
  psramIo: boolean;
  eraseBlockEn: boolean;
  eraseAlways: boolean;
  compressType: number;
}

export interface W800Header {
  magic: number;
  imgAttr: number;
  imgAddr: number;
  imgLen: number;
  imgHeaderAddr: number;
  upgradeImgAddr: number;
  orgChecksum: number;
  updNo: number;
  version: string;
  /** log_level[2:0], skip_esc_check[3], skip_upgrade_check[4], skip_integrity_check[5]. */
  flags: number;
  reserved1: number;
  next: number;
  hdChecksum: number;
}

export function decodeAttributes(attr: number): ImageAttributes {
  const bit = (n: number) => ((attr >>> n) & 1) === 1;
  return {
    imgType: attr & 0xf,
    codeEncrypt: bit(4),
    prikeySel: (attr >>> 5) & 7,
    signature: bit(8),
    gzip: bit(16),
    psramIo: bit(17),
    eraseBlockEn: bit(18),
    eraseAlways: bit(19),
    compressType: (attr >>> 20) & 3,
  };
}

/** img_attr for an image of `imgType` with `compressType` (every other bit 0, as the tools write). */
export function makeAttributes(imgType: number, compressType: CompressType): number {
  return ((imgType & 0xf) | (compressType << 20)) >>> 0;
}

/** The SDK's CRC-32 of a few bytes (the complement of zlib's); images go through a Digest. */
export function sdkCrc(bytes: Uint8Array): number {
  return (crc32(bytes) ^ 0xffffffff) >>> 0;
}

/** The SDK's CRC from a crc32 Digest's result (zlib's CRC, 4 bytes big-endian). */
export function sdkCrcOfDigest(d: Uint8Array): number {
  return (((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) ^ 0xffffffff) >>> 0;
}

export function decodeHeader(bytes: Uint8Array): W800Header {
  if (bytes.length < W800_HEADER_SIZE) {
    throw new OtaError("image-invalid", `a W800 image starts with a ${W800_HEADER_SIZE}-byte header; got ${bytes.length} bytes`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, W800_HEADER_SIZE);
  const u = (at: number) => v.getUint32(at, true);
  let version = "";
  for (let i = 32; i < 32 + VERSION_BYTES && bytes[i] !== 0; i++) version += String.fromCharCode(bytes[i]);
  return {
    magic: u(0),
    imgAttr: u(4),
    imgAddr: u(8),
    imgLen: u(12),
    imgHeaderAddr: u(16),
    upgradeImgAddr: u(20),
    orgChecksum: u(24),
    updNo: u(28),
    version,
    flags: u(48),
    reserved1: u(52),
    next: u(56),
    hdChecksum: u(60),
  };
}

/** The 64 header bytes; hd_checksum is computed over the first 60, whatever `header` says. */
export function encodeHeader(header: Omit<W800Header, "hdChecksum">): Uint8Array {
  const out = new Uint8Array(W800_HEADER_SIZE);
  const v = new DataView(out.buffer);
  const put = (at: number, n: number) => v.setUint32(at, n >>> 0, true);
  put(0, header.magic);
  put(4, header.imgAttr);
  put(8, header.imgAddr);
  put(12, header.imgLen);
  put(16, header.imgHeaderAddr);
  put(20, header.upgradeImgAddr);
  put(24, header.orgChecksum);
  put(28, header.updNo);
  out.set(versionBytes(header.version), 32);
  put(48, header.flags);
  put(52, header.reserved1);
  put(56, header.next);
  put(60, sdkCrc(out.subarray(0, 60)));
  return out;
}

/** ver[16]: printable ASCII, NUL-terminated, so at most 15 characters (as bin2img.py cuts it). */
function versionBytes(version: string): Uint8Array {
  const out = new Uint8Array(VERSION_BYTES);
  if (version.length >= VERSION_BYTES) throw new OtaError("bad-argument", `a W800 version has at most ${VERSION_BYTES - 1} characters; '${version}' has ${version.length}`);
  for (let i = 0; i < version.length; i++) {
    const c = version.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new OtaError("bad-argument", `a W800 version is printable ASCII; '${version}' has character ${c} at ${i}`);
    out[i] = c;
  }
  return out;
}

/**
 * Where the header is checked. "staged": what wm_ota_ops_check_header accepts in app_ota (every
 * refusal in the SDK's order). "installed": xs-ota's model of the second-stage boot's check of
 * the run image, which must name the app partition and fit it.
 */
export type HeaderPlace = "staged" | "installed";

const hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, "0")}`;

/** Throws OtaError "image-invalid" with the SDK's reason when the 64 bytes would be refused. */
export function checkHeader(bytes: Uint8Array, layout: W800Layout, place: HeaderPlace): W800Header {
  const h = decodeHeader(bytes);
  const bad = (why: string): never => {
    throw new OtaError("image-invalid", `W800 header: ${why}`);
  };
  const attr = decodeAttributes(h.imgAttr);
  const app = W800_FLASH_BASE + layout.app.offset;
  const ota = W800_FLASH_BASE + layout.appOta.offset;
  if (h.magic !== W800_MAGIC) bad(`magic_no is ${hex(h.magic)}, not ${hex(W800_MAGIC)}`);
  if (attr.imgType === 0 || attr.imgType === 0xe) bad(`img_type ${attr.imgType} is not an app image`);
  if (attr.gzip) bad("gzip_enable is set (this SDK takes XZ only)");
  if (attr.compressType >= 2) bad(`compress_type ${attr.compressType} is unknown (0 none, 1 xz)`);
  if (place === "staged") {
    if (h.imgAddr !== ota + W800_RUN_OFFSET && h.imgAddr !== app + W800_RUN_OFFSET) bad(`img_addr ${hex(h.imgAddr)} is neither app_ota's nor app's run address`);
    if (h.imgLen > layout.appOta.size - W800_HEADER_SIZE) bad(`img_len ${h.imgLen} does not fit app_ota (${layout.appOta.size} bytes with the header)`);
    if (h.imgHeaderAddr !== ota && h.imgHeaderAddr !== app) bad(`img_header_addr ${hex(h.imgHeaderAddr)} is neither app_ota's nor app's`);
    if (h.upgradeImgAddr !== 0 && h.upgradeImgAddr !== ota) bad(`upgrade_img_addr ${hex(h.upgradeImgAddr)} is neither 0 nor app_ota's`);
  } else {
    if (attr.compressType !== 0) bad("an installed image is not compressed");
    if (h.imgAddr !== app + W800_RUN_OFFSET) bad(`img_addr ${hex(h.imgAddr)} is not app's run address ${hex(app + W800_RUN_OFFSET)}`);
    if (h.imgHeaderAddr !== app) bad(`img_header_addr ${hex(h.imgHeaderAddr)} is not app's ${hex(app)}`);
    if (h.imgLen > layout.app.size - W800_RUN_OFFSET) bad(`img_len ${h.imgLen} does not fit app (${layout.app.size} bytes from +0x400)`);
  }
  const crc = sdkCrc(bytes.subarray(0, 60));
  if (crc !== h.hdChecksum) bad(`hd_checksum ${hex(h.hdChecksum)} does not match the header's CRC ${hex(crc)}`);
  return h;
}
