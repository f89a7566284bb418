/**
 * Powertools' log lines and EMF documents for the Lambda predictor, printed without loading powertools.
 *
 * Loading `@aws-lambda-powertools/logger` and `/metrics`, building a Logger and a Metrics and printing their first
 * lines costs 5-10 ms of a Lambda cold start here (34 KB of JavaScript compiled and run once, measured in the
 * bundle). The predictor's own lines use a small part of them: a message with flat fields (and an `error`), the
 * invocation's context, one EMF document per request. `PlainLogger` and `PlainLambdaMetrics` print exactly the
 * bytes powertools prints for those (tests compare them with powertools' own output), while the environment
 * leaves powertools' output plain (`plainPowertoolsEnvironment`): no dev mode, UTC timestamps, a log level that
 * prints INFO, no debug sampling, metrics enabled, one request at a time. Otherwise the predictor loads powertools
 * and logs through it.
 */
import {
  clientError,
  latencyOf,
  logRequestThrough,
  type RequestLog,
  type RequestMetrics,
  type RequestRecord,
  serverError,
} from './request-record.ts';
import type { LineSink } from './sink.ts';

/** powertools' log levels (its `LogLevelThreshold` keys). */
const LEVELS = new Set(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'CRITICAL', 'SILENT']);
/** The levels at which powertools prints every INFO, WARN and ERROR line. */
const PLAIN_LEVELS = new Set(['TRACE', 'DEBUG', 'INFO']);
/** The values powertools reads as true from a boolean setting. */
const TRUTHY = new Set(['1', 'y', 'yes', 't', 'true', 'on']);
const FALSY = new Set(['0', 'n', 'no', 'f', 'false', 'off']);

/**
 * Whether powertools would print the predictor's lines exactly as `PlainLogger` and `PlainLambdaMetrics` do, read
 * as powertools reads its settings:
 * - the log level prints INFO: Lambda's advanced logging controls (`AWS_LAMBDA_LOG_LEVEL`, which JSON log format
 *   sets) when they name a level, else `POWERTOOLS_LOG_LEVEL` or `LOG_LEVEL`, else INFO;
 * - no dev mode (`POWERTOOLS_DEV`: indented JSON, stack lines as arrays, metrics off), metrics not disabled;
 * - no debug sampling (`POWERTOOLS_LOGGER_SAMPLE_RATE` 0 or unset: the line prints `sampling_rate`);
 * - a UTC time zone (`TZ`; Lambda sets `:UTC`), and one request at a time (no `AWS_LAMBDA_MAX_CONCURRENCY`).
 * Settings powertools refuses (a sample rate or a boolean it cannot read) make it throw; they go to powertools too.
 */
export function plainPowertoolsEnvironment(env: NodeJS.ProcessEnv = process.env): boolean {
  const read = (name: string): string => env[name]?.trim() ?? '';
  const lambda = read('AWS_LAMBDA_LOG_LEVEL');
  const alc = lambda === 'FATAL' ? 'CRITICAL' : lambda;
  const level = LEVELS.has(alc) ? alc : read('POWERTOOLS_LOG_LEVEL') || read('LOG_LEVEL');
  // A level powertools cannot read leaves its default, INFO.
  if (LEVELS.has(level) && !PLAIN_LEVELS.has(level)) return false;
  const disabled = env.POWERTOOLS_METRICS_DISABLED;
  if (disabled !== undefined && !FALSY.has(disabled.trim().toLowerCase())) return false;
  if (Number(read('POWERTOOLS_LOGGER_SAMPLE_RATE')) !== 0) return false;
  if (read('AWS_LAMBDA_MAX_CONCURRENCY') !== '') return false;
  return plainFormat(env);
}

/** powertools formats a line plainly: no dev mode (indented JSON, stacks as arrays), UTC timestamps. */
export function plainFormat(env: NodeJS.ProcessEnv = process.env): boolean {
  if (TRUTHY.has(env.POWERTOOLS_DEV?.trim().toLowerCase() ?? '')) return false;
  const tz = env.TZ?.trim();
  return !tz || tz.includes('UTC');
}

/** The fields of the Lambda context that powertools prints. */
export interface LambdaContextFields {
  readonly invokedFunctionArn?: string;
  readonly awsRequestId?: string;
  readonly memoryLimitInMB?: string | number;
  readonly functionName?: string;
  readonly functionVersion?: string;
  readonly tenantId?: string;
}

/** What the Lambda predictor logs through: powertools' Logger, or a `PlainLogger`. */
export interface LambdaLogger {
  info(message: string, fields: Record<string, unknown>): void;
  warn(message: string, fields: Record<string, unknown>): void;
  error(message: string, fields: Record<string, unknown>): void;
  /** Adds the invocation's context to the lines that follow. */
  addContext(context: LambdaContextFields): void;
}

/** Where a plain logger's lines go: as powertools' Console sends them, INFO to stdout, WARN and ERROR to stderr. */
interface Outlet {
  out(line: string): void;
  err(line: string): void;
}

function outlet(sink: LineSink | undefined): Outlet {
  if (sink) return { out: sink, err: sink };
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  };
}

/** Keys powertools keeps for itself: a field of that name is dropped (powertools warns). */
const RESERVED = new Set(['level', 'message', 'sampling_rate', 'service', 'timestamp']);

/**
 * powertools' Logger with its default formatter, for a plain environment (see the module comment): a line is the
 * level, message, timestamp, service, the invocation's context, sampling_rate (0) and the X-Ray trace id, then the
 * fields in their order; empty values (undefined, null, '') are left out; errors are printed as powertools
 * formats them (name, location, message, stack, cause, and their own fields).
 */
export class PlainLogger implements LambdaLogger {
  readonly #service: string;
  readonly #outlet: Outlet;
  /** The context powertools prints, in its order (undefined before the first invocation). */
  #context: Record<string, unknown> | undefined;
  #tenant: string | undefined;
  /** powertools' cold start: true for the first invocation of an on-demand environment only. */
  #coldStart: boolean;

  constructor(options: { serviceName: string; sink?: LineSink; env?: NodeJS.ProcessEnv }) {
    this.#service = options.serviceName;
    this.#outlet = outlet(options.sink);
    const env = options.env ?? process.env;
    this.#coldStart = env.AWS_LAMBDA_INITIALIZATION_TYPE?.trim() === 'on-demand';
  }

  info(message: string, fields?: Record<string, unknown>): void {
    this.#outlet.out(this.#line('INFO', message, fields));
  }

  warn(message: string, fields?: Record<string, unknown>): void {
    this.#outlet.err(this.#line('WARN', message, fields));
  }

  error(message: string, fields?: Record<string, unknown>): void {
    this.#outlet.err(this.#line('ERROR', message, fields));
  }

  addContext(context: LambdaContextFields): void {
    const coldStart = this.#coldStart;
    this.#coldStart = false;
    this.#context = {
      cold_start: coldStart,
      function_arn: context.invokedFunctionArn,
      function_memory_size: context.memoryLimitInMB,
      function_name: context.functionName,
      function_request_id: context.awsRequestId,
    };
    this.#tenant = context.tenantId;
  }

  /** One line, as powertools prints it. */
  #line(level: string, message: string, fields?: Record<string, unknown>): string {
    const item: Record<string, unknown> = {
      level,
      message,
      timestamp: new Date().toISOString(),
      service: this.#service,
      ...this.#context,
      sampling_rate: 0,
      xray_trace_id: xrayTraceId(),
      tenant_id: this.#tenant,
    };
    if (fields) {
      for (const [key, value] of Object.entries(fields)) {
        if (!RESERVED.has(key)) item[key] = value;
      }
    }
    for (const key in item) {
      const value = item[key];
      if (value === undefined || value === null || value === '') delete item[key];
    }
    return JSON.stringify(item, replacer());
  }
}

/** The X-Ray trace id powertools prints: the Root of the invocation's trace header. */
function xrayTraceId(): string | undefined {
  const store = (globalThis as { awslambda?: { InvokeStore?: { getXRayTraceId(): string | undefined } } })
    .awslambda?.InvokeStore;
  const header = store?.getXRayTraceId() ?? process.env._X_AMZN_TRACE_ID?.trim() ?? '';
  if (header === '') return undefined;
  if (!header.includes('=')) return header;
  let root: string | undefined;
  for (const field of header.split(';')) {
    const [key, value] = field.split('=');
    if (key === 'Root') root = value;
  }
  return root;
}

/** powertools' JSON replacer: errors formatted, bigints as strings, circular references left out. */
function replacer(): (this: unknown, key: string, value: unknown) => unknown {
  const ancestors: unknown[] = [];
  return function (this: unknown, _key, value) {
    let replaced = value;
    if (replaced instanceof Error) replaced = formatError(replaced);
    if (typeof replaced === 'bigint') return replaced.toString();
    if (typeof replaced === 'object' && replaced !== null) {
      while (ancestors.length > 0 && ancestors.at(-1) !== this) ancestors.pop();
      if (ancestors.includes(replaced)) return undefined;
      ancestors.push(replaced);
    }
    return replaced;
  };
}

function formatError(error: Error): Record<string, unknown> {
  // `for...in` lists inherited enumerable keys too; powertools prints only the error's own values.
  const { name, message, stack, cause, ...own } = error as Error & Record<string, unknown>;
  const formatted: Record<string, unknown> = {
    name,
    location: codeLocation(stack),
    message,
    stack,
    cause: cause instanceof Error ? formatError(cause) : cause,
  };
  for (const key in error) {
    if (key !== 'name' && key !== 'message' && key !== 'stack' && key !== 'cause') {
      formatted[key] = own[key];
    }
  }
  return formatted;
}

/** The first `(file:line:column)` of a stack, as `file:line`. */
function codeLocation(stack: string | undefined): string {
  if (!stack) return '';
  const frame = /\(([^()]*?):(\d+?):(\d+?)\)\\?$/;
  for (const line of stack.split('\n')) {
    const match = frame.exec(line);
    if (match) return `${match[1]}:${Number(match[2])}`;
  }
  return '';
}

/** The request log through a `LambdaLogger` (powertools' or a plain one). */
export function lambdaRequestLog(logger: LambdaLogger): RequestLog {
  return { logRequest: (record) => logRequestThrough(logger, record) };
}

/**
 * The predictor's request metrics on Lambda, as `createRequestMetrics({ flush: 'manual' })` publishes them through
 * powertools: inference requests only, one EMF document per request (namespace, dimensions service + model +
 * version, `Requests`, `Latency`, `ClientErrors`, `ServerErrors`, `BatchSize`, the request id as a property),
 * printed on `flush()` to stdout.
 */
export class PlainLambdaMetrics implements RequestMetrics {
  readonly #namespace: string;
  readonly #service: string;
  readonly #out: LineSink;
  #pending: RequestRecord | undefined;

  constructor(options: { namespace: string; serviceName: string; sink?: LineSink }) {
    this.#namespace = options.namespace;
    this.#service = options.serviceName;
    this.#out = outlet(options.sink).out;
  }

  recordRequest(record: RequestRecord): void {
    if (record.operation !== 'infer') return;
    if (this.#pending !== undefined) this.flush(); // one document per request
    this.#pending = record;
  }

  flush(): void {
    const record = this.#pending;
    if (record === undefined) return;
    this.#pending = undefined;
    // NaN for a request the server refused itself (not timed): no Latency value, as `request-metrics.ts`.
    const value = latencyOf(record);
    const latency = Number.isNaN(value) ? undefined : value;
    const metrics: [string, string][] = [['Requests', 'Count']];
    if (latency !== undefined) metrics.push(['Latency', 'Milliseconds']);
    metrics.push(['ClientErrors', 'Count'], ['ServerErrors', 'Count']);
    if (record.batchSize !== undefined) metrics.push(['BatchSize', 'Count']);
    const doc: Record<string, unknown> = {
      _aws: {
        Timestamp: Date.now(),
        CloudWatchMetrics: [
          {
            Namespace: this.#namespace,
            Dimensions: [['service', 'model', 'version']],
            Metrics: metrics.map(([Name, Unit]) => ({ Name, Unit })),
          },
        ],
      },
      request_id: record.requestId,
      service: this.#service,
      model: record.model?.name ?? 'none',
      version: record.model?.version ?? 'none',
      Requests: 1,
      Latency: latency,
      ClientErrors: clientError(record.status),
      ServerErrors: serverError(record.status),
    };
    if (record.batchSize !== undefined) doc.BatchSize = record.batchSize;
    this.#out(JSON.stringify(doc));
  }
}
