/**
 * Per-request metrics in CloudWatch Embedded Metric Format through powertools' Metrics: namespace `maap`,
 * dimensions service + model + version, metrics `Requests`, `Latency` (ms), `ClientErrors` (4xx), `ServerErrors`
 * (5xx) and `BatchSize`, with the request id as a property. Only inference requests are counted: health probes
 * and metadata reads would drown the latency figures.
 *
 * Flushing: `per-request` (the Node server: one EMF document per request) or `manual` (Lambda: the handler calls
 * `flush()` once per invocation, which carries one request). Recording is synchronous from dimensions to
 * publication, so concurrent requests on one process never mix their dimensions.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { RequestMetrics, RequestRecord } from './request-record.ts';
import { type LineSink, redirectPowertools, serviceName, sinkConsole } from './sink.ts';

export const METRICS_NAMESPACE = 'maap';

export interface RequestMetricsOptions {
  /** @default `maap` */
  readonly namespace?: string;
  /** @default $POWERTOOLS_SERVICE_NAME, else `maap-predictor` */
  readonly serviceName?: string;
  /** @default `per-request` */
  readonly flush?: 'per-request' | 'manual';
  /** Receives each EMF document (and powertools' warnings) instead of stdout. */
  readonly sink?: LineSink;
  /** An existing Metrics instance to record into. */
  readonly metrics?: Metrics;
}

export interface PowertoolsRequestMetrics extends RequestMetrics {
  readonly metrics: Metrics;
}

export function createRequestMetrics(options: RequestMetricsOptions = {}): PowertoolsRequestMetrics {
  const metrics =
    options.metrics ??
    new Metrics({
      namespace: options.namespace ?? METRICS_NAMESPACE,
      serviceName: options.serviceName ?? serviceName(),
      ...(options.sink ? { logger: sinkConsole(options.sink) } : {}),
    });
  if (options.sink) redirectPowertools(metrics, options.sink);
  const perRequest = (options.flush ?? 'per-request') === 'per-request';
  const flush = (): void => {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  };
  return {
    metrics,
    flush,
    recordRequest(record: RequestRecord) {
      if (record.operation !== 'infer') return;
      metrics.addDimensions({
        model: record.model?.name ?? 'none',
        version: record.model?.version ?? 'none',
      });
      metrics.addMetric('Requests', MetricUnit.Count, 1);
      metrics.addMetric('Latency', MetricUnit.Milliseconds, Math.round(record.latencyMs * 1000) / 1000);
      metrics.addMetric(
        'ClientErrors',
        MetricUnit.Count,
        record.status >= 400 && record.status < 500 ? 1 : 0,
      );
      metrics.addMetric('ServerErrors', MetricUnit.Count, record.status >= 500 ? 1 : 0);
      if (record.batchSize !== undefined) metrics.addMetric('BatchSize', MetricUnit.Count, record.batchSize);
      metrics.addMetadata('request_id', record.requestId);
      if (perRequest) flush();
    },
  };
}
