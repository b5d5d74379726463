/**
 * Builds an uncompressed W800 image the way the SDK's tools do (wm_iot_sdk tools/wm/bin2img.py,
 * OpenW800 wm_tool.c): the body padded with 0xFF to a multiple of 4 bytes, img_len and
 * org_checksum over the padded body, img_type 1, and the header addresses of the app partition
 * (where the image runs), upgrade_img_addr naming app_ota. The same function wraps an XZ stream
 * in an outer header (compressType 1): an XZ stream is a multiple of 4 bytes, so it gains no pad.
 */
import type { DigestFactory } from "../ports/digest.ts";
import { OtaError } from "../errors.ts";
import { W800_FLASH_BASE, W800_HEADER_SIZE, W800_MAGIC, W800_RUN_OFFSET, encodeHeader, makeAttributes, sdkCrcOfDigest, type CompressType, type W800Layout } from "./header.ts";

export interface PackW800Options {
  version: string;
  body: Uint8Array;
  layout: W800Layout;
  digests: DigestFactory;
  /** 1: the body is an XZ stream holding an inner, uncompressed image. Default 0. */
  compressType?: CompressType;
  /** Default 1 (an app image); 0 and 0xE are refused by the SDK. */
  imgType?: number;
  updNo?: number;
}

export function packW800Image(o: PackW800Options): Uint8Array {
  const compressType = o.compressType ?? 0;
  const imgType = o.imgType ?? 1;
  if (!Number.isInteger(imgType) || imgType < 1 || imgType > 0xf || imgType === 0xe) throw new OtaError("bad-argument", `img_type ${imgType} is not an app image type (1-15, not 14)`);
  const padded = (o.body.length + 3) & ~3;
  const limit = compressType === 1 ? o.layout.appOta.size - W800_HEADER_SIZE : o.layout.app.size - W800_RUN_OFFSET;
  if (padded > limit) throw new OtaError("image-too-large", `a body of ${padded} bytes does not fit (${limit} bytes at most)`);
  const out = new Uint8Array(W800_HEADER_SIZE + padded).fill(0xff);
  out.set(o.body, W800_HEADER_SIZE);
  const crc = o.digests.create("crc32");
  crc.update(out.subarray(W800_HEADER_SIZE));
  const app = W800_FLASH_BASE + o.layout.app.offset;
  out.set(
    encodeHeader({
      magic: W800_MAGIC,
      imgAttr: makeAttributes(imgType, compressType),
      imgAddr: app + W800_RUN_OFFSET,
      imgLen: padded,
      imgHeaderAddr: app,
      upgradeImgAddr: W800_FLASH_BASE + o.layout.appOta.offset,
      orgChecksum: sdkCrcOfDigest(crc.finish()),
      updNo: o.updNo ?? 0,
      version: o.version,
      flags: 0,
      reserved1: 0,
      next: 0,
    }),
    0,
  );
  return out;
}
