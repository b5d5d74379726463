/**
 * Stand-ins for "embedded:io/socket/tcp" and "embedded:io/socket/tcp/tls". The fake clients
 * never open sockets (the runner holds the connections), but apps name these classes in their
 * network providers, and the fake clients tell TLS from TCP by them, as the real clients' choice
 * of socket decides it. `checkSecure` is what Moddable's TLS needs from the `secure` dictionary
 * (documentation/network/securesocket.md): DER in buffers, the key as PKCS#8.
 */
export class TCP {
  constructor() {
    throw new Error("the test clients do not open sockets");
  }
}

export class TLSSocket {
  constructor() {
    throw new Error("the test clients do not open sockets");
  }
}

export interface SecureDictionary {
  protocolVersion?: number;
  certificate?: unknown;
  clientCertificates?: unknown;
  clientKey?: unknown;
}

function der(value: unknown, what: string): Uint8Array {
  const bytes = value instanceof ArrayBuffer ? new Uint8Array(value) : ArrayBuffer.isView(value) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : undefined;
  if (!bytes || bytes.length < 2 || bytes[0] !== 0x30) throw new Error(`TLS: ${what} is not DER in a buffer`);
  return bytes;
}

/** The DER a TLS stack was given: the CA to trust, the client's chain and its PKCS#8 key. */
export interface SecureParts {
  ca?: Uint8Array;
  certificates: Uint8Array[];
  key?: Uint8Array;
}

/** Throws what a TLS handshake would fail on; returns the DER it would use. */
export function secureParts(secure: SecureDictionary | undefined): SecureParts {
  if (!secure) return { certificates: [] };
  if (secure.protocolVersion !== undefined && secure.protocolVersion < 0x303) throw new Error("TLS: older than TLS 1.2");
  const ca = secure.certificate === undefined ? undefined : der(secure.certificate, "certificate");
  let certificates: Uint8Array[] = [];
  if (secure.clientCertificates !== undefined) {
    if (!Array.isArray(secure.clientCertificates) || !secure.clientCertificates.length) throw new Error("TLS: clientCertificates is not an array of certificates");
    certificates = secure.clientCertificates.map((c, i) => der(c, `clientCertificates[${i}]`));
  }
  let key: Uint8Array | undefined;
  if (secure.clientKey !== undefined) {
    key = der(secure.clientKey, "clientKey");
    // PrivateKeyInfo opens with version INTEGER 0 right after the SEQUENCE header.
    const at = key[1] & 0x80 ? 2 + (key[1] & 0x7f) : 2;
    if (key[at] !== 0x02 || key[at + 1] !== 0x01 || key[at + 2] !== 0x00 || key[at + 3] !== 0x30) throw new Error("TLS: clientKey is not PKCS#8 PrivateKeyInfo");
  }
  return { ca, certificates, key };
}

/** Throws what a TLS handshake would fail on; returns the CA certificate's DER, if any. */
export function checkSecure(secure: SecureDictionary | undefined): Uint8Array | undefined {
  return secureParts(secure).ca;
}
