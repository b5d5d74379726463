/**
 * Http: HTTP/1.1 requests as Moddable's ECMA-419 HTTP client can make them: method, path and
 * headers out, status and headers back, the body as a stream of chunks. The downloader above it
 * (modules/transfer) enforces Range and length rules itself; the port only moves bytes.
 *
 * Contract:
 * - `request` resolves once the status line and headers arrived. It rejects with OtaError
 *   "network" when the connection cannot be made or drops before the headers, "timeout" when no
 *   byte arrives for `timeout` ms, "bad-argument" for a URL that is not absolute http(s).
 * - Header names are lower case; repeated headers are joined with ", ". Redirects are not
 *   followed: a 3xx comes back as it is.
 * - `read()` resolves with the next chunk of the body (transfer encodings already decoded), or
 *   undefined at its end. It rejects with "network" when the connection drops or is reset before
 *   the end the server announced (Content-Length or the last chunk), "timeout" after `timeout` ms
 *   without a byte. Chunks are at most the host's buffer size (64 KB on the desktop).
 * - `close()` abandons the response and its connection; later reads resolve undefined.
 * - POST sends `body` (none: an empty one) with Content-Length set by the host; GET and HEAD
 *   take no body ("bad-argument").
 * - https trusts only the CA certificates in `ca` (PEM), none from the OS, and verifies the
 *   host name. No proxies, no shared connection pools: each request is its own connection.
 */
export interface HttpRequest {
  method: "GET" | "HEAD" | "POST";
  url: string;
  headers?: Record<string, string>;
  /** POST only: the request body (small: a login's JSON), sent with its Content-Length. */
  body?: Uint8Array;
  /** PEM CA certificates trusted for https. */
  ca?: string;
  /** Milliseconds without a byte before the request fails with "timeout". */
  timeout?: number;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  read(): Promise<Uint8Array | undefined>;
  close(): void;
}

export interface Http {
  request(request: HttpRequest): Promise<HttpResponse>;
}
