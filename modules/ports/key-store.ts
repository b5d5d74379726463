/**
 * KeyStore: the code-signing public keys the device trusts, found by label (the `certfile`
 * named in an AWS OTA job document), and the device's identity.
 *
 * Contract:
 * - `publicKey(label)` returns the key as an uncompressed SEC1 P-256 point, or undefined when
 *   no key has that label. Labels compare exactly.
 * - `thingName()` is the device's cloud identity (AWS thing name, EnOS device key).
 */
export interface KeyStore {
  publicKey(label: string): Uint8Array | undefined;
  thingName(): string;
}
