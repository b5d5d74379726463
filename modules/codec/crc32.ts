/**
 * CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), continuable like zlib's crc32(data, crc):
 * `crc32(b, crc32(a))` equals `crc32(a ++ b)`. ESP-IDF's ROM `crc32_le(0xFFFFFFFF, p, n)` is
 * `crc32(p, 0xFFFFFFFF)` here. Table-driven; for image-sized data hosts use a native Digest.
 */

// Built when the module loads: on a device that is at preload, on the build machine, and the
// 1 KB table then sits read-only in flash instead of in RAM.
const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array, previous = 0): number {
  const t = TABLE;
  let c = ~previous >>> 0;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
