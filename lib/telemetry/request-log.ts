/**
 * The request log: one JSON line per request through powertools' Logger (level, message, timestamp, service,
 * sampling_rate, plus the fields below in snake_case, the powertools convention). 5xx answers log at ERROR with
 * the exception's name, message and stack under `error`; everything else at INFO with message `request`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { RequestLog, RequestRecord } from './request-record.ts';
import { type LineSink, redirectPowertools, serviceName } from './sink.ts';

export interface RequestLogOptions {
  /** @default $POWERTOOLS_SERVICE_NAME, else `maap-predictor` */
  readonly serviceName?: string;
  /** Receives each line instead of stdout/stderr (tests). */
  readonly sink?: LineSink;
  /** An existing Logger to log through (e.g. one the Lambda handler injects the context into). */
  readonly logger?: Logger;
}

/** The fields of a request's log line. */
export function requestLogFields(record: RequestRecord): Record<string, string | number> {
  const fields: Record<string, string | number> = {
    request_id: record.requestId,
    method: record.method,
    path: record.path,
    status: record.status,
    latency_ms: Math.round(record.latencyMs * 1000) / 1000,
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

export interface PowertoolsRequestLog extends RequestLog {
  readonly logger: Logger;
}

export function createRequestLog(options: RequestLogOptions = {}): PowertoolsRequestLog {
  const logger = options.logger ?? new Logger({ serviceName: options.serviceName ?? serviceName() });
  if (options.sink) redirectPowertools(logger, options.sink);
  return {
    logger,
    logRequest(record) {
      const fields = requestLogFields(record);
      if (record.status >= 500) {
        const fault = record.fault instanceof Error ? record.fault : new Error(String(record.fault));
        logger.error('request', { ...fields, error: fault });
      } else {
        logger.info('request', fields);
      }
    },
  };
}
