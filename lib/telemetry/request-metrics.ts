/**
 * Request metrics in CloudWatch Embedded Metric Format through powertools' Metrics: namespace `maap`, dimensions
 * service + model + version, metrics `Requests`, `Latency` (ms), `ClientErrors` (4xx), `ServerErrors` (5xx) and
 * `BatchSize`. Only inference requests are counted: health probes and metadata reads would drown the latency
 * figures.
 *
 * Flushing:
 * - `interval` (the Node server, the default): requests are aggregated, one EMF document for up to 100 requests
 *   of one model version, their values as arrays (`"Latency": [1.2, 0.9, ...]`, `"Requests": [1, 1, ...]`; EMF's
 *   limit is 100 values per metric): CloudWatch counts every value as a sample, so sums, counts and percentiles
 *   are those of the requests. A document goes out when it is full, and what is pending at the latest
 *   `intervalMs` (1 s) after its first request, on `flush()` (the server calls it at shutdown) and at exit.
 * - `manual` (Lambda): one request per document with its `request_id` as a property; the handler calls
 *   `flush()` once per invocation.
 * - `per-request`: like `manual`, published as each request is recorded.
 *
 * Powertools builds and prints every document (namespace, service and dimensions, metric definitions and units,
 * timestamp, its console, POWERTOOLS_METRICS_DISABLED). In `interval` mode the value arrays are filled in as the
 * document is serialised: `addMetric` once per value costs 5-10 µs a request at 100 values a document (each call
 * validates the unit and copies the metric's whole array).
 *
 * Recording and publishing are synchronous from dimensions to publication, so concurrent requests on one process
 * never mix their dimensions.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { type LineOutput, onExit, outputConsole } from './output.ts';
import {
  clientError,
  latencyOf,
  METRICS_NAMESPACE,
  type RequestMetrics,
  type RequestRecord,
  serverError,
} from './request-record.ts';
import { type LineSink, redirectPowertools, serviceName, sinkConsole } from './sink.ts';

/** Requests per EMF document in `interval` mode: EMF takes up to 100 values per metric. */
export const MAX_REQUESTS_PER_DOCUMENT = 100;

export interface RequestMetricsOptions {
  /** @default `maap` */
  readonly namespace?: string;
  /** @default $POWERTOOLS_SERVICE_NAME, else `maap-predictor` */
  readonly serviceName?: string;
  /** @default `interval` */
  readonly flush?: 'interval' | 'per-request' | 'manual';
  /** How often `interval` mode publishes. @default 1000 ms */
  readonly intervalMs?: number;
  /** Receives each EMF document (and powertools' warnings) instead of stdout. */
  readonly sink?: LineSink;
  /** Where EMF documents go (batched stdout, see `output.ts`); powertools' warnings go to stderr. */
  readonly output?: LineOutput;
  /** An existing Metrics instance to record into (`interval` mode then adds each value with `addMetric`). */
  readonly metrics?: Metrics;
}

export interface PowertoolsRequestMetrics extends RequestMetrics {
  readonly metrics: Metrics;
}

/** The values of one request, as they go into the document. */
interface Sample {
  readonly latency: number;
  readonly clientError: number;
  readonly serverError: number;
  readonly batchSize: number | undefined;
}

/**
 * The requests of one model version waiting for the next publication, as the document's columns (one array per
 * metric: recording a request allocates nothing).
 */
class Series {
  /** NaN for a request refused before the app (not timed). */
  readonly latency: number[] = [];
  readonly clientErrors: number[] = [];
  readonly serverErrors: number[] = [];
  /** NaN for a request without one (a request refused before its inputs were read). */
  readonly batchSizes: number[] = [];
  constructor(
    readonly model: string,
    readonly version: string,
  ) {}

  get size(): number {
    return this.latency.length;
  }

  add(record: RequestRecord): void {
    this.latency.push(latencyOf(record));
    this.clientErrors.push(clientError(record.status));
    this.serverErrors.push(serverError(record.status));
    this.batchSizes.push(record.batchSize ?? Number.NaN);
  }
}

/**
 * Powertools' Metrics, whose next serialised document takes its metric values from `values` (set just before
 * publishing): the metrics are declared with `addMetric` (one value each), the arrays replace those values.
 */
class AggregatedMetrics extends Metrics {
  values: Record<string, number | number[]> | undefined;
  override serializeMetrics(): ReturnType<Metrics['serializeMetrics']> {
    const doc = super.serializeMetrics();
    if (this.values !== undefined) Object.assign(doc, this.values);
    return doc;
  }
}

export function createRequestMetrics(options: RequestMetricsOptions = {}): PowertoolsRequestMetrics {
  const target = options.sink ?? (options.output ? outputConsole(options.output) : undefined);
  const metrics =
    options.metrics ??
    new AggregatedMetrics({
      namespace: options.namespace ?? METRICS_NAMESPACE,
      serviceName: options.serviceName ?? serviceName(),
      ...(target ? { logger: typeof target === 'function' ? sinkConsole(target) : target } : {}),
    });
  if (target) redirectPowertools(metrics, target);
  const mode = options.flush ?? 'interval';
  const output = options.sink ? undefined : options.output;
  const sample = (record: RequestRecord): Sample => ({
    latency: latencyOf(record),
    clientError: clientError(record.status),
    serverError: serverError(record.status),
    batchSize: record.batchSize,
  });
  const dimensions = (record: RequestRecord) => ({
    model: record.model?.name ?? 'none',
    version: record.model?.version ?? 'none',
  });

  if (mode !== 'interval') {
    const flush = (): void => {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    };
    return {
      metrics,
      flush,
      ...(output ? { drain: () => output.drain() } : {}),
      recordRequest(record) {
        if (record.operation !== 'infer') return;
        metrics.addDimensions(dimensions(record));
        addSamples(metrics, [sample(record)]);
        metrics.addMetadata('request_id', record.requestId);
        if (mode === 'per-request') flush();
      },
    };
  }

  const intervalMs = options.intervalMs ?? 1000;
  /** model → version → the requests waiting; two levels, so that finding a request's series allocates nothing. */
  const pending = new Map<string, Map<string, Series>>();
  let timer: NodeJS.Timeout | undefined;
  let atExit: (() => void) | undefined;
  const flush = (): void => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    atExit?.();
    atExit = undefined;
    if (pending.size === 0) return;
    const all = [...pending.values()].flatMap((versions) => [...versions.values()]);
    pending.clear();
    for (const series of all) publishSeries(metrics, series);
  };
  return {
    metrics,
    flush,
    ...(output ? { drain: () => output.drain() } : {}),
    recordRequest(record) {
      if (record.operation !== 'infer') return;
      const model = record.model?.name ?? 'none';
      const version = record.model?.version ?? 'none';
      let versions = pending.get(model);
      if (versions === undefined) {
        versions = new Map();
        pending.set(model, versions);
      }
      let series = versions.get(version);
      if (series === undefined) {
        series = new Series(model, version);
        versions.set(version, series);
      }
      series.add(record);
      if (series.size === MAX_REQUESTS_PER_DOCUMENT) {
        // A full document goes out at once: publishing stays spread out instead of a burst every interval.
        versions.delete(version);
        if (versions.size === 0) pending.delete(model);
        publishSeries(metrics, series);
      }
      if (timer === undefined) {
        timer = setTimeout(flush, intervalMs);
        timer.unref();
        atExit = onExit(flush); // runs before the output's own exit hook (registered earlier)
      }
    },
  };
}

type Unit = Parameters<Metrics['addMetric']>[1];

/** Publishes a model version's requests, up to `MAX_REQUESTS_PER_DOCUMENT` per document. */
function publishSeries(metrics: Metrics, series: Series): void {
  const { model, version } = series;
  if (!(metrics instanceof AggregatedMetrics)) {
    // Someone else's Metrics gets one addMetric per value. Powertools publishes by itself when a metric reaches
    // 100 values, which would split a document from its dimensions: 99 at most then.
    const samples: Sample[] = series.latency.map((latency, i) => {
      const batchSize = series.batchSizes[i] as number;
      return {
        latency,
        clientError: series.clientErrors[i] as number,
        serverError: series.serverErrors[i] as number,
        batchSize: Number.isNaN(batchSize) ? undefined : batchSize,
      };
    });
    for (let i = 0; i < samples.length; i += MAX_REQUESTS_PER_DOCUMENT - 1) {
      metrics.addDimensions({ model, version });
      addSamples(metrics, samples.slice(i, i + MAX_REQUESTS_PER_DOCUMENT - 1));
      metrics.publishStoredMetrics();
    }
    return;
  }
  // A series holds at most MAX_REQUESTS_PER_DOCUMENT requests: one document.
  metrics.addDimensions({ model, version });
  const values: Record<string, number | number[]> = {};
  const declare = (name: string, unit: Unit, column: number[]): void => {
    if (column.length === 0) return;
    metrics.addMetric(name, unit, column[0] as number);
    values[name] = column.length === 1 ? (column[0] as number) : column;
  };
  declare(
    'Requests',
    MetricUnit.Count,
    series.latency.map(() => 1),
  );
  declare(
    'Latency',
    MetricUnit.Milliseconds,
    series.latency.filter((l) => !Number.isNaN(l)),
  );
  declare('ClientErrors', MetricUnit.Count, series.clientErrors);
  declare('ServerErrors', MetricUnit.Count, series.serverErrors);
  declare(
    'BatchSize',
    MetricUnit.Count,
    series.batchSizes.filter((b) => !Number.isNaN(b)),
  );
  metrics.values = values;
  try {
    metrics.publishStoredMetrics();
  } finally {
    metrics.values = undefined;
  }
}

/** Adds the samples' values metric by metric (so that the document lists its metrics in this order). */
function addSamples(metrics: Metrics, samples: readonly Sample[]): void {
  for (const _ of samples) metrics.addMetric('Requests', MetricUnit.Count, 1);
  for (const s of samples) {
    if (!Number.isNaN(s.latency)) metrics.addMetric('Latency', MetricUnit.Milliseconds, s.latency);
  }
  for (const s of samples) metrics.addMetric('ClientErrors', MetricUnit.Count, s.clientError);
  for (const s of samples) metrics.addMetric('ServerErrors', MetricUnit.Count, s.serverError);
  for (const s of samples) {
    if (s.batchSize !== undefined) metrics.addMetric('BatchSize', MetricUnit.Count, s.batchSize);
  }
}
