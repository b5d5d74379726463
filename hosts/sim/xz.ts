/**
 * XZ in one synchronous call, over lzma-native (liblzma). Its documented APIs (compress,
 * decompress, createStream) hand results over on later turns; its native Stream, driven with
 * `code(chunk, false)`, codes on the calling thread and calls `bufferHandler` before it returns,
 * which is what a synchronous simulated boot needs. Node only.
 *
 * Options, after wm_iot_sdk's tools/wm/bin2img.py: LZMA2 at preset 9 extreme (normal mode, BT4
 * match finder, nice length 273, depth 512), a 32 KiB dictionary, CRC32 check. The dictionary is
 * the decoder's window: 32 KiB is what an MCU's XZ decoder can hold in RAM next to the firmware,
 * where liblzma's preset 9 would ask for 64 MiB. lzma-native's `preset` field would reset the
 * dictionary, so the preset's parameters are spelled out.
 */
import { createRequire } from "node:module";

interface NativeStream {
  streamEncoder(options: { filters: Filter[]; check: number }): void;
  streamDecoder(options: { memlimit: number; flags?: number }): void;
  code(chunk: Uint8Array | null, async: boolean): void;
  bufferHandler: (buf: Uint8Array | null, processed: number | undefined, err: Error | null) => void;
}

interface Filter {
  id: number;
  options: { dictSize: number; mode: number; niceLen: number; mf: number; depth: number };
}

interface Lzma {
  Stream: new () => NativeStream;
  rawDecoderMemusage(filters: Filter[]): number;
  FILTER_LZMA2: number;
  CHECK_CRC32: number;
  MODE_NORMAL: number;
  MF_BT4: number;
}

const lzma = createRequire(import.meta.url)("lzma-native") as Lzma;

export const XZ_DICT_SIZE = 1 << 15;

const filters = (): Filter[] => [{ id: lzma.FILTER_LZMA2, options: { dictSize: XZ_DICT_SIZE, mode: lzma.MODE_NORMAL, niceLen: 273, mf: lzma.MF_BT4, depth: 512 } }];

/** What liblzma needs to decode a stream made with these options: the most the boot allows. */
export const XZ_MEMLIMIT = lzma.rawDecoderMemusage(filters()) + 4096;

function run(setup: (s: NativeStream) => void, input: Uint8Array): Uint8Array {
  const s = new lzma.Stream();
  setup(s);
  const out: Uint8Array[] = [];
  let failure: Error | undefined;
  let ended = false;
  s.bufferHandler = (buf, _processed, err) => {
    if (err) failure = err;
    else if (buf) out.push(buf);
    else if (buf === null) ended = true;
  };
  s.code(input, false);
  s.code(null, false);
  if (failure) throw failure;
  if (!ended) throw new Error("xz: the stream did not end");
  return Buffer.concat(out);
}

export function xzCompress(data: Uint8Array): Uint8Array {
  return run((s) => s.streamEncoder({ filters: filters(), check: lzma.CHECK_CRC32 }), data);
}

/** Throws (liblzma's message) on a damaged stream or one that needs a bigger dictionary. */
export function xzDecompress(stream: Uint8Array, memlimit = XZ_MEMLIMIT): Uint8Array {
  return run((s) => s.streamDecoder({ memlimit }), stream);
}
