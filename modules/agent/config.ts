/** The agent's options, in one place, with the defaults a device gets; the cloud's identity is its preset's. */
export interface AgentConfig {
  /** Transfer preference when a job allows both. */
  preferProtocol: "http" | "mqtt";
  /** Block transfers (AWS MQTT streams): block size (256..131072) and blocks per request (at most 128 KB worth). */
  blockSize: number;
  blocksPerRequest: number;
  /** Stream requests in flight. */
  window: number;
  /** HTTP bytes per range request; 0 asks for the rest in one request. */
  httpWindow: number;
  /** Milliseconds without a byte before an HTTP request is abandoned. */
  timeout: number;
  /** Milliseconds a stream request may stay silent before it is asked again. */
  requestTimeout: number;
  /** Attempts in a row without progress before a transfer gives up. */
  retries: number;
  /**
   * The minimum sustained rate, bytes per second over every `rateWindow` ms of a transfer (HTTP
   * or streams): below it the transfer ends "too-slow", so a server that trickles cannot hold an
   * update forever. 0 turns the floor off.
   */
  minRate: number;
  rateWindow: number;
  /** Bytes between progress reports to the cloud. */
  progressInterval: number;
  /**
   * Bytes the image writers erase at once ahead of the data, from the slot's start (64 KB: the
   * block SPI NOR erases in one command). `eraseWholeSlot` erases the entire slot before the
   * first byte instead, as AWS's ESP32 agent does through esp_ota_begin (for comparison only).
   */
  eraseAhead: number;
  eraseWholeSlot: boolean;
  /** Bytes between download progress records in the StateStore (each is an NVS write). */
  recordInterval: number;
  /** Milliseconds the app's self-test may take before it counts as failed. */
  selfTestTimeout: number;
  /** Development only: accept images without a signature (a warning is logged at every use). */
  allowUnsigned: boolean;
  /** PEM CA certificates trusted for https downloads. */
  ca?: string;
}

export const DEFAULT_CONFIG: AgentConfig = Object.freeze({
  preferProtocol: "mqtt",
  blockSize: 4096,
  blocksPerRequest: 32,
  window: 2,
  httpWindow: 0,
  timeout: 30_000,
  requestTimeout: 10_000,
  retries: 5,
  minRate: 256,
  rateWindow: 120_000,
  progressInterval: 64 * 1024,
  eraseAhead: 64 * 1024,
  eraseWholeSlot: false,
  recordInterval: 64 * 1024,
  selfTestTimeout: 60_000,
  allowUnsigned: false,
});
