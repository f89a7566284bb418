/**
 * What the serving app reports about each request, and the two consumers of it: the request log (one
 * structured line per request) and the request metrics (CloudWatch Embedded Metric Format).
 */

/** Which endpoint a request reached. */
export type Operation = 'infer' | 'model-metadata' | 'model-ready' | 'health' | 'server-metadata' | 'other';

export interface RequestRecord {
  /** The `x-request-id` the response carries. */
  readonly requestId: string;
  readonly method: string;
  /** The URL path (truncated to 256 characters). */
  readonly path: string;
  /** The status answered; 499 (as nginx logs it) when the client left before the answer was written. */
  readonly status: number;
  /**
   * From the first byte of the request seen by the app to the response object being ready; 0 for a request the
   * server refused before the app (`refused`), which nobody timed.
   */
  readonly latencyMs: number;
  /** Answered by the server itself, before the app (see `Refusal`): left out of the Latency metric. */
  readonly refused?: boolean;
  readonly operation: Operation;
  /** The model this server was serving when it answered (never a name taken from the URL). */
  readonly model?: { readonly name: string; readonly version: string };
  /** First dimension of the first input, for inference requests that passed validation. */
  readonly batchSize?: number;
  /** The message the client received, for 4xx and 5xx answers. */
  readonly error?: string;
  /** The exception behind a 5xx answer. */
  readonly fault?: unknown;
}

/** One structured log line per request. */
export interface RequestLog {
  logRequest(record: RequestRecord): void;
  /** Writes out lines still buffered; resolves once the output has taken them (a buffered log has this). */
  flush?(): void | Promise<void>;
}

/** Per-request metrics. */
export interface RequestMetrics {
  recordRequest(record: RequestRecord): void;
  /** Publishes what was recorded and not yet published (a no-op when nothing is stored). */
  flush(): void;
  /** Writes out published documents still buffered (a buffered output has this); call after `flush()`. */
  drain?(): void | Promise<void>;
}
