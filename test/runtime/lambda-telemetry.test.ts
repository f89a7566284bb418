/**
 * The Lambda predictor's plain log lines and EMF documents (`lib/telemetry/plain-powertools.ts`) against what
 * powertools itself prints for the same calls, byte for byte, and the choice between them (`lambdaTelemetry`).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MaapError } from '../../lib/errors.ts';
import {
  type LambdaLogger,
  PlainLambdaMetrics,
  PlainLogger,
  plainPowertoolsEnvironment,
} from '../../lib/telemetry/plain-powertools.ts';
import { createRequestMetrics } from '../../lib/telemetry/request-metrics.ts';
import {
  METRICS_NAMESPACE,
  type RequestMetrics,
  type RequestRecord,
} from '../../lib/telemetry/request-record.ts';
import { redirectPowertools, type SinkConsole } from '../../lib/telemetry/sink.ts';
import { lambdaTelemetry } from '../../runtime/lambda/core.ts';
import { lambdaContext } from './lambda-events.ts';

const SERVICE = 'maap-predictor';

/** A console that keeps what powertools prints, by stream: stdout (log, info) and stderr (warn, error). */
function capture(): SinkConsole & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const to = (lines: string[]) => (line: unknown) => lines.push(String(line));
  return {
    out,
    err,
    log: to(out),
    info: to(out),
    debug: to(out),
    trace: to(out),
    warn: to(err),
    error: to(err),
  };
}

/** powertools' Logger and a PlainLogger side by side; the plain one's lines are caught from stdout and stderr. */
function pair() {
  const theirs = new Logger({ serviceName: SERVICE });
  const printed = capture();
  redirectPowertools(theirs, printed);
  const ours = new PlainLogger({ serviceName: SERVICE });
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => out.push(String(chunk)) > 0);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => err.push(String(chunk)) > 0);
  return {
    theirs,
    ours,
    /** Both loggers' lines so far, by stream. */
    lines: () => ({
      theirs: { out: printed.out, err: printed.err },
      ours: { out: out.map((l) => l.replace(/\n$/, '')), err: err.map((l) => l.replace(/\n$/, '')) },
    }),
    check() {
      vi.mocked(process.stdout.write).mockRestore();
      vi.mocked(process.stderr.write).mockRestore();
      // Each write is one whole line.
      for (const chunk of [...out, ...err]) expect(chunk).toMatch(/^[^\n]+\n$/);
      const { theirs: t, ours: o } = this.lines();
      expect(o.out).toEqual(t.out);
      expect(o.err).toEqual(t.err);
      return t;
    },
  };
}

class TestFault extends MaapError {
  override readonly status = 418;
  readonly detail = { shard: 3 };
}

/** Every setting powertools' Logger and Metrics read that could change their lines (cleared for each test). */
const SETTINGS = [
  'AWS_LAMBDA_LOG_LEVEL',
  'POWERTOOLS_LOG_LEVEL',
  'LOG_LEVEL',
  'POWERTOOLS_DEV',
  'POWERTOOLS_METRICS_DISABLED',
  'POWERTOOLS_LOGGER_SAMPLE_RATE',
  'POWERTOOLS_LOGGER_LOG_EVENT',
  'AWS_LAMBDA_MAX_CONCURRENCY',
  'POWERTOOLS_SERVICE_NAME',
  'POWERTOOLS_METRICS_NAMESPACE',
  'TZ',
  '_X_AMZN_TRACE_ID',
  'AWS_LAMBDA_INITIALIZATION_TYPE',
];

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date('2026-11-28T06:30:00.123Z'));
  for (const name of SETTINGS) vi.stubEnv(name, undefined);
});

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  vi.useRealTimers();
});

describe("PlainLogger prints powertools' lines", () => {
  it('for flat fields before any invocation: empty values left out, NaN as null, key order kept', () => {
    const p = pair();
    const fields = {
      model: 'fraud',
      model_version: '1.4.0',
      signed: false,
      verify_ms: 7,
      ratio: Number.NaN,
      origin: '',
      gone: undefined,
      none: null,
      quote: 'a "quoted" \\ line\nwith ünïcödé',
    };
    p.theirs.info('model loaded', fields);
    p.ours.info('model loaded', fields);
    const t = p.check();
    expect(t.out).toHaveLength(1);
    expect(JSON.parse(t.out[0] as string)).toMatchObject({ level: 'INFO', sampling_rate: 0, ratio: null });
  });

  it('with the invocation context: cold start true on the first invocation of an on-demand environment only', () => {
    vi.stubEnv('AWS_LAMBDA_INITIALIZATION_TYPE', 'on-demand');
    const p = pair();
    for (const id of ['first', 'second']) {
      const context = { ...lambdaContext(id), tenantId: id === 'second' ? 'tenant-7' : undefined };
      p.theirs.addContext(context as never);
      p.ours.addContext(context);
      p.theirs.info('request', { request_id: id, status: 200 });
      p.ours.info('request', { request_id: id, status: 200 });
    }
    const t = p.check();
    expect(t.out.map((l) => JSON.parse(l).cold_start)).toEqual([true, false]);
    expect(JSON.parse(t.out[1] as string).tenant_id).toBe('tenant-7');
  });

  it('with no cold start outside an on-demand environment (provisioned concurrency, or no initialization type)', () => {
    for (const type of ['provisioned-concurrency', undefined]) {
      vi.stubEnv('AWS_LAMBDA_INITIALIZATION_TYPE', type);
      const p = pair();
      p.theirs.addContext(lambdaContext() as never);
      p.ours.addContext(lambdaContext());
      p.theirs.info('request', {});
      p.ours.info('request', {});
      expect(JSON.parse(p.check().out[0] as string).cold_start).toBe(false);
    }
  });

  it("with the X-Ray trace id: the Root of Lambda's trace header, or a bare id as it is", () => {
    const p = pair();
    for (const header of [
      'Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1',
      '1-bare',
    ]) {
      vi.stubEnv('_X_AMZN_TRACE_ID', header);
      p.theirs.info('request', { status: 200 });
      p.ours.info('request', { status: 200 });
    }
    const t = p.check();
    expect(t.out.map((l) => JSON.parse(l).xray_trace_id)).toEqual([
      '1-67891233-abcdef012345678912345678',
      '1-bare',
    ]);
  });

  it('for WARN and ERROR lines on stderr, with an error, its own fields and its cause formatted as powertools does', () => {
    const p = pair();
    const fault = new TestFault('the shard is gone', { cause: new RangeError('index 9 out of range') });
    p.theirs.warn('no model loaded', { reason: 'not found' });
    p.ours.warn('no model loaded', { reason: 'not found' });
    p.theirs.error('request', { status: 500, error: fault });
    p.ours.error('request', { status: 500, error: fault });
    p.theirs.error('no model loaded', { reason: 'boom', error: 'a string' });
    p.ours.error('no model loaded', { reason: 'boom', error: 'a string' });
    const t = p.check();
    expect(t.out).toEqual([]);
    expect(t.err).toHaveLength(3);
    const error = JSON.parse(t.err[1] as string).error;
    expect(error).toMatchObject({
      name: 'TestFault',
      message: 'the shard is gone',
      status: 418,
      detail: { shard: 3 },
      cause: { name: 'RangeError', message: 'index 9 out of range' },
    });
    expect(error.location).toMatch(/^file:.*:\d+$/); // the first frame with a (file:line:column)
  });
});

describe("PlainLogger prints powertools' lines (more)", () => {
  it("for errors with inherited enumerable fields (a DOMException's codes), printing only the error's own", () => {
    class Retryable extends Error {}
    (Retryable.prototype as unknown as { retryable: boolean }).retryable = true;
    const p = pair();
    for (const error of [AbortSignal.abort().reason as Error, new Retryable('later')]) {
      p.theirs.error('request', { status: 500, error });
      p.ours.error('request', { status: 500, error });
    }
    const t = p.check();
    expect(JSON.parse(t.err[0] as string).error).not.toHaveProperty('INDEX_SIZE_ERR');
    expect(JSON.parse(t.err[1] as string).error).not.toHaveProperty('retryable');
  });

  it("with the trace id of Lambda's invocation store when the runtime has one", () => {
    vi.stubEnv('_X_AMZN_TRACE_ID', 'Root=1-00000000-from-the-environment');
    const global = globalThis as { awslambda?: unknown };
    const before = global.awslambda;
    global.awslambda = { InvokeStore: { getXRayTraceId: () => 'Root=1-11111111-from-the-store;Sampled=0' } };
    try {
      const p = pair();
      p.theirs.info('request', { status: 200 });
      p.ours.info('request', { status: 200 });
      expect(JSON.parse(p.check().out[0] as string).xray_trace_id).toBe('1-11111111-from-the-store');
    } finally {
      global.awslambda = before;
    }
  });
});

const record = (over: Partial<RequestRecord> = {}): RequestRecord => ({
  requestId: 'req-1',
  method: 'POST',
  path: '/v2/models/fraud/infer',
  status: 200,
  latencyMs: 1.23456,
  operation: 'infer',
  model: { name: 'fraud', version: '1.4.0' },
  batchSize: 4,
  ...over,
});

describe('PlainLambdaMetrics', () => {
  it("prints the EMF document powertools' manual metrics print for each request, byte for byte", () => {
    const records = [
      record(),
      record({ requestId: 'req-2', status: 400, batchSize: undefined, error: 'bad input' }),
      record({ requestId: 'req-3', status: 503, model: undefined, batchSize: undefined }),
      record({ requestId: 'req-4', status: 500, latencyMs: 12 }),
      record({ requestId: 'req-5', status: 400, refused: true, latencyMs: 0 }),
      record({ requestId: 'req-6', latencyMs: Number.NaN }),
    ];
    const theirs: string[] = [];
    const ours: string[] = [];
    const reference = createRequestMetrics({ flush: 'manual', sink: (l) => theirs.push(l) });
    const plain = new PlainLambdaMetrics({
      namespace: METRICS_NAMESPACE,
      serviceName: SERVICE,
      sink: (l) => ours.push(l),
    });
    for (const r of records) {
      for (const m of [reference, plain]) {
        m.recordRequest(r);
        m.recordRequest({ ...r, operation: 'health' }); // not counted
        m.flush();
        m.flush(); // nothing left: prints nothing
      }
    }
    expect(ours).toEqual(theirs);
    expect(ours).toHaveLength(records.length);
    expect(JSON.parse(ours[2] as string)).toMatchObject({ model: 'none', version: 'none', ServerErrors: 1 });
    expect(JSON.parse(ours[4] as string)).not.toHaveProperty('Latency');
    expect(JSON.parse(ours[5] as string)).not.toHaveProperty('Latency');
  });

  it('prints EMF documents to stdout', () => {
    const out: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => out.push(String(chunk)) > 0);
    const plain = new PlainLambdaMetrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE });
    plain.recordRequest(record());
    plain.flush();
    vi.mocked(process.stdout.write).mockRestore();
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^\{"_aws":.*"BatchSize":4\}\n$/);
  });
});

describe('the choice between plain lines and powertools', () => {
  /** One error for both loggers: its stack (and location) is where it was made. */
  const BOOM = new Error('boom');

  /** The predictor's calls: lines before and during an invocation, an error, one request's metrics. */
  function calls(logger: LambdaLogger, metrics: RequestMetrics): void {
    logger.info('model loaded', { model: 'fraud', signed: false });
    logger.addContext(lambdaContext());
    logger.info('request', { status: 200 });
    logger.warn('no model loaded', { reason: 'r' });
    logger.error('request', { status: 500, error: BOOM });
    metrics.recordRequest(record());
    metrics.flush();
  }

  /** What powertools prints for `calls` in the current environment (or why it throws), and what the plain writers do. */
  function both(): { theirs: string; ours: string } {
    const show = (out: string[], err: string[]) =>
      [
        ...out.map((l) => `out ${l.replace(/\n$/, '')}`),
        ...err.map((l) => `err ${l.replace(/\n$/, '')}`),
      ].join('\n');
    let theirs: string;
    try {
      const printed = capture();
      const logger = new Logger({ serviceName: SERVICE });
      redirectPowertools(logger, printed);
      const metrics = createRequestMetrics({ flush: 'manual' });
      redirectPowertools(metrics.metrics, printed);
      calls(logger as unknown as LambdaLogger, metrics);
      theirs = show(printed.out, printed.err);
    } catch (err) {
      theirs = `throws: ${(err as Error).message}`;
    }
    const out: string[] = [];
    const err: string[] = [];
    const stdout = vi
      .spyOn(process.stdout, 'write')
      .mockImplementation((chunk) => out.push(String(chunk)) > 0);
    const stderr = vi
      .spyOn(process.stderr, 'write')
      .mockImplementation((chunk) => err.push(String(chunk)) > 0);
    try {
      calls(
        new PlainLogger({ serviceName: SERVICE }),
        new PlainLambdaMetrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE }),
      );
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
    return { theirs, ours: show(out, err) };
  }

  it('is plain exactly where powertools prints the same lines: checked against powertools in each environment', () => {
    const plain: Record<string, string>[] = [
      {},
      { TZ: ':UTC', AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand' },
      { TZ: 'UTC', POWERTOOLS_LOG_LEVEL: '  ' },
      { AWS_LAMBDA_LOG_LEVEL: 'INFO' }, // what JSON log format sets
      { AWS_LAMBDA_LOG_LEVEL: 'DEBUG', POWERTOOLS_LOG_LEVEL: 'ERROR' }, // the advanced logging controls win
      { POWERTOOLS_LOG_LEVEL: 'error' }, // not a level powertools reads: INFO
      { LOG_LEVEL: 'TRACE' },
      { POWERTOOLS_DEV: 'false' },
      { POWERTOOLS_METRICS_DISABLED: 'off' },
      { POWERTOOLS_LOGGER_SAMPLE_RATE: '0' },
      { POWERTOOLS_LOGGER_LOG_EVENT: 'true' },
    ];
    const powertools: Record<string, string>[] = [
      { AWS_LAMBDA_LOG_LEVEL: 'WARN' },
      { AWS_LAMBDA_LOG_LEVEL: 'FATAL' },
      { AWS_LAMBDA_LOG_LEVEL: 'ERROR', LOG_LEVEL: 'DEBUG' },
      { POWERTOOLS_LOG_LEVEL: 'WARN' },
      { LOG_LEVEL: 'SILENT' },
      { POWERTOOLS_DEV: 'true' },
      { POWERTOOLS_DEV: '1' },
      { POWERTOOLS_METRICS_DISABLED: 'true' },
      { POWERTOOLS_METRICS_DISABLED: '' },
      { POWERTOOLS_LOGGER_SAMPLE_RATE: '0.5' },
      { POWERTOOLS_LOGGER_SAMPLE_RATE: 'often' },
      { TZ: 'Europe/Paris' },
    ];
    for (const [env, expected] of [
      ...plain.map((e) => [e, true] as const),
      ...powertools.map((e) => [e, false] as const),
    ]) {
      for (const name of SETTINGS) vi.stubEnv(name, undefined);
      for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
      const label = JSON.stringify(env);
      expect(plainPowertoolsEnvironment(process.env), label).toBe(expected);
      const { theirs, ours } = both();
      if (expected) expect(ours, label).toBe(theirs);
      else expect(ours, label).not.toBe(theirs);
    }
  });

  it('is powertools for several requests at once (AWS_LAMBDA_MAX_CONCURRENCY), whose per-invocation state it keeps', () => {
    expect(plainPowertoolsEnvironment({ AWS_LAMBDA_MAX_CONCURRENCY: '8' })).toBe(false);
  });

  it('logs through powertools when a setting asks for it: a WARN log level drops INFO lines', async () => {
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'WARN');
    const lines: string[] = [];
    const telemetry = await lambdaTelemetry((l) => lines.push(l));
    expect(telemetry.logger).toBeInstanceOf(Logger);
    telemetry.logger.info('model loaded', { model: 'fraud' });
    telemetry.logger.warn('no model loaded', { reason: 'r' });
    expect(lines.map((l) => JSON.parse(l).level)).toEqual(['WARN']);
  });

  it('logs through plain lines otherwise, with the service name from POWERTOOLS_SERVICE_NAME', async () => {
    vi.stubEnv('POWERTOOLS_SERVICE_NAME', 'fraud-scoring');
    const lines: string[] = [];
    const telemetry = await lambdaTelemetry((l) => lines.push(l));
    expect(telemetry.logger).toBeInstanceOf(PlainLogger);
    telemetry.logger.info('model loaded', { model: 'fraud' });
    telemetry.requestLog.logRequest(record());
    telemetry.metrics.recordRequest(record());
    telemetry.metrics.flush();
    expect(lines.map((l) => JSON.parse(l).service)).toEqual([
      'fraud-scoring',
      'fraud-scoring',
      'fraud-scoring',
    ]);
    expect(JSON.parse(lines[1] as string)).toMatchObject({
      message: 'request',
      request_id: 'req-1',
      batch_size: 4,
    });
  });
});
