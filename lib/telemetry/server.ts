/**
 * The Node server's telemetry: the request log and EMF metrics in powertools' formats on stdout, written in batches
 * (see `output.ts`), the metrics aggregated and published every second, reports handed over once per event-loop
 * turn after the responses went out.
 */
import { stdoutLines } from './output.ts';
import { createRequestLog } from './request-log.ts';
import { createRequestMetrics } from './request-metrics.ts';
import type { RequestLog, RequestMetrics } from './request-record.ts';

export interface ServerTelemetry {
  readonly logger: RequestLog;
  readonly metrics: RequestMetrics;
  readonly batchReports: true;
}

/** What `createApp` takes for the Node server: `createApp({ models, ...serverTelemetry() })`. */
export function serverTelemetry(): ServerTelemetry {
  return {
    logger: createRequestLog({ output: stdoutLines() }),
    metrics: createRequestMetrics({ output: stdoutLines() }),
    batchReports: true,
  };
}
