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

/** The CloudWatch namespace of the request metrics. */
export const METRICS_NAMESPACE = 'maap';

/** A latency as the log line and the metrics print it: milliseconds to the microsecond. */
export const roundLatency = (ms: number): number => Math.round(ms * 1000) / 1000;
/** A request's Latency value; NaN (left out) for a refusal, which nobody timed: a 0 would drag the percentiles. */
export const latencyOf = (record: RequestRecord): number =>
  record.refused === true ? Number.NaN : roundLatency(record.latencyMs);
/** The ClientErrors and ServerErrors values of a request (1 or 0), from its status. */
export const clientError = (status: number): number => (status >= 400 && status < 500 ? 1 : 0);
export const serverError = (status: number): number => (status >= 500 ? 1 : 0);

/** The fields of a request's log line (snake_case, the powertools convention), in their printed order. */
export function requestLogFields(record: RequestRecord): Record<string, string | number> {
  const fields: Record<string, string | number> = {
    request_id: record.requestId,
    method: record.method,
    path: record.path,
    status: record.status,
    latency_ms: roundLatency(record.latencyMs),
    operation: record.operation,
  };
  if (record.model) {
    fields.model = record.model.name;
    fields.model_version = record.model.version;
  }
  if (record.batchSize !== undefined) fields.batch_size = record.batchSize;
  if (record.error !== undefined) fields.error_message = record.error;
  return fields;
}

/** A logger with powertools' `info` and `error`. */
export interface LevelLogger {
  info(message: string, fields: Record<string, unknown>): void;
  error(message: string, fields: Record<string, unknown>): void;
}

/**
 * Logs a request's line through `logger`: INFO `request` with its fields; a 5xx at ERROR, a 500 with its fault
 * (and stack) under `error`, a 503 (no model in service) saying why in `error_message`.
 */
export function logRequestThrough(logger: LevelLogger, record: RequestRecord): void {
  if (record.status < 500) {
    logger.info('request', requestLogFields(record));
    return;
  }
  const fault = record.fault;
  if (fault === undefined) logger.error('request', requestLogFields(record));
  else
    logger.error('request', {
      ...requestLogFields(record),
      error: fault instanceof Error ? fault : new Error(String(fault)),
    });
}
