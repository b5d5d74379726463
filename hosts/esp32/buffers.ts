/** Moddable's native modules take whole ArrayBuffers; these hand them exactly the bytes meant. */

/** `bytes` as an ArrayBuffer of the same length: its own buffer when it spans all of it, else a copy. */
export function exactBuffer(bytes: Uint8Array): ArrayBuffer {
  const b = bytes.buffer;
  if (b instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === b.byteLength) return b;
  return copyBuffer(bytes);
}

/** A fresh ArrayBuffer holding a copy of `bytes` (for values that must not change later). */
export function copyBuffer(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.length);
  new Uint8Array(out).set(bytes);
  return out;
}
