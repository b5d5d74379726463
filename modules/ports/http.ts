/**
 * Http: HTTP/1.1 requests as Moddable's ECMA-419 HTTP client can make them: method, path and
 * headers out, status and headers back, the body as a stream of chunks.
 *
 * Contract:
 * - `request` resolves when the status line and headers arrived; header names are lower case.
 * - The response body is read with `read()`, which resolves with the next chunk, or undefined at
 *   the end; chunks are at most the host's buffer size. `close()` abandons the body.
 * - https uses only the CA certificates given in `ca` (PEM), none from the OS; http and https
 *   only; redirects are not followed here (the downloader decides).
 * - A dropped connection or a timeout rejects with an Error whose message says which.
 */
export interface HttpRequest {
  method: "GET" | "HEAD";
  url: string;
  headers?: Record<string, string>;
  /** PEM CA certificates trusted for https. */
  ca?: string;
  /** Milliseconds without progress before the request fails. */
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
