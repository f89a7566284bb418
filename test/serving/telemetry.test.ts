/**
 * One structured log line per request and CloudWatch EMF metrics for inference requests, with the fields operators
 * query on, captured through injected sinks. On the Node server the metrics are aggregated (up to 100 requests of
 * a model version per document, their values as arrays) and published on an interval, on flush and at exit; the
 * log lines go out in batches, and nothing buffered is lost at shutdown or exit.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../lib/serving/app.ts';
import { ModelSlot } from '../../lib/serving/host.ts';
import { bufferedLines, type LineStream } from '../../lib/telemetry/output.ts';
import { createRequestLog } from '../../lib/telemetry/request-log.ts';
import { createRequestMetrics, MAX_REQUESTS_PER_DOCUMENT } from '../../lib/telemetry/request-metrics.ts';
import type { RequestRecord } from '../../lib/telemetry/request-record.ts';
import { serviceName } from '../../lib/telemetry/sink.ts';
import { startServer } from '../../runtime/server.ts';
import { mlpModel } from '../fixtures/models.ts';
import { tempDir } from '../helpers/packages.ts';
import { call, infer, type Served, serveFixture } from './harness.ts';

const REPO = resolve(import.meta.dirname, '../..');

let served: Served;
beforeAll(async () => {
  served = await serveFixture(mlpModel(), { pack: { name: 'fraud', version: '1.4.0' } });
});
afterAll(() => served.close());

const PATH = '/v2/models/fraud/infer';
const request = (rows: number) => ({
  inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 4], data: new Array(rows * 4).fill(0.5) }],
});

/** Runs `fn`, then publishes the aggregated metrics: the log lines and EMF documents it produced. */
async function captured(fn: () => Promise<unknown>) {
  await served.flushTelemetry();
  const [logs, emf] = [served.logs.length, served.emf.length];
  await fn();
  await served.flushTelemetry();
  return { logs: served.logs.slice(logs), emf: served.emf.slice(emf) };
}

function emfShape(doc: Record<string, unknown>) {
  const aws = doc._aws as {
    Timestamp: number;
    CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: unknown[] }[];
  };
  expect(typeof aws.Timestamp).toBe('number');
  expect(Math.abs(aws.Timestamp - Date.now())).toBeLessThan(60_000);
  return aws.CloudWatchMetrics;
}

const METRIC_DEFINITIONS = [
  { Name: 'Requests', Unit: 'Count' },
  { Name: 'Latency', Unit: 'Milliseconds' },
  { Name: 'ClientErrors', Unit: 'Count' },
  { Name: 'ServerErrors', Unit: 'Count' },
  { Name: 'BatchSize', Unit: 'Count' },
];

/** Values of a metric in a document, as an array (powertools prints a lone value as a number). */
const values = (doc: Record<string, unknown> | undefined, name: string): unknown[] => {
  const value = doc?.[name];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
};

describe('request telemetry', () => {
  it('logs a success with request id, model, version, status, latency, batch size, path and method', async () => {
    let requestId = '';
    const { logs, emf } = await captured(async () => {
      const answer = await infer(served.url, request(3), PATH, { 'x-request-id': 'req-ok-1' });
      expect(answer.status).toBe(200);
      requestId = answer.headers.get('x-request-id') ?? '';
    });
    expect(requestId).toBe('req-ok-1');
    expect(logs).toHaveLength(1);
    const line = logs[0] as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 'INFO',
      message: 'request',
      service: 'maap-predictor',
      request_id: 'req-ok-1',
      method: 'POST',
      path: PATH,
      status: 200,
      operation: 'infer',
      model: 'fraud',
      model_version: '1.4.0',
      batch_size: 3,
    });
    expect(typeof line.latency_ms).toBe('number');
    expect(line.latency_ms as number).toBeGreaterThanOrEqual(0);
    expect(new Date(line.timestamp as string).getTime()).not.toBeNaN();
    expect(line).not.toHaveProperty('error_message');

    expect(emf).toHaveLength(1);
    const doc = emf[0] as Record<string, unknown>;
    expect(emfShape(doc)).toEqual([
      { Namespace: 'maap', Dimensions: [['service', 'model', 'version']], Metrics: METRIC_DEFINITIONS },
    ]);
    expect(doc).toMatchObject({
      service: 'maap-predictor',
      model: 'fraud',
      version: '1.4.0',
      Requests: 1,
      ClientErrors: 0,
      ServerErrors: 0,
      BatchSize: 3,
    });
    expect(doc.Latency).toBe(line.latency_ms);
    // An aggregated document stands for many requests: no single request id in it.
    expect(doc).not.toHaveProperty('request_id');
  });

  it('logs a 400 with the message the client got, and counts a client error', async () => {
    const { logs, emf } = await captured(async () => {
      const answer = await infer(
        served.url,
        { inputs: [{ name: 'x', datatype: 'INT8', shape: [1, 4], data: [1, 2, 3, 4] }] },
        PATH,
      );
      expect(answer.status).toBe(400);
    });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({
      level: 'INFO',
      status: 400,
      operation: 'infer',
      model: 'fraud',
      model_version: '1.4.0',
      error_message: 'input "x": datatype INT8 does not match the model\'s FP32',
    });
    expect(logs[0]).not.toHaveProperty('batch_size'); // the request never validated
    expect(emf).toHaveLength(1);
    expect(emf[0]).toMatchObject({
      Requests: 1,
      ClientErrors: 1,
      ServerErrors: 0,
      model: 'fraud',
      version: '1.4.0',
    });
    expect(emf[0]).not.toHaveProperty('BatchSize');
    expect(emfShape(emf[0] as Record<string, unknown>)[0]?.Metrics).toEqual(METRIC_DEFINITIONS.slice(0, 4));
  });

  it('reports every request of an interval in one document, their values as arrays in request order', async () => {
    const rows = [2, 5, 1, 4];
    const { logs, emf } = await captured(async () => {
      for (const n of rows) expect((await infer(served.url, request(n), PATH)).status).toBe(200);
      expect((await infer(served.url, { inputs: [] }, PATH)).status).toBe(400);
      expect((await infer(served.url, request(1), '/v2/models/fraud/versions/9.9.9/infer')).status).toBe(404);
    });
    expect(logs).toHaveLength(6);
    expect(emf).toHaveLength(1);
    const doc = emf[0] as Record<string, unknown>;
    expect(emfShape(doc)).toEqual([
      { Namespace: 'maap', Dimensions: [['service', 'model', 'version']], Metrics: METRIC_DEFINITIONS },
    ]);
    expect(doc).toMatchObject({ service: 'maap-predictor', model: 'fraud', version: '1.4.0' });
    expect(doc.Requests).toEqual([1, 1, 1, 1, 1, 1]);
    expect(doc.Latency).toEqual(logs.map((l) => l.latency_ms));
    expect(doc.ClientErrors).toEqual([0, 0, 0, 0, 1, 1]);
    expect(doc.ServerErrors).toEqual([0, 0, 0, 0, 0, 0]);
    expect(doc.BatchSize).toEqual(rows); // only the requests that validated have a batch size
  });

  it('logs health and metadata requests without emitting metrics', async () => {
    const { logs, emf } = await captured(async () => {
      await call(served.url, 'GET', '/v2/health/ready');
      await call(served.url, 'GET', '/v2/models/fraud');
      await call(served.url, 'GET', '/nowhere');
    });
    expect(logs.map((l) => [l.operation, l.status, l.path])).toEqual([
      ['health', 200, '/v2/health/ready'],
      ['model-metadata', 200, '/v2/models/fraud'],
      ['other', 404, '/nowhere'],
    ]);
    expect(emf).toEqual([]);
  });

  it('never takes metric dimensions from the URL: an unknown model name counts against the served model', async () => {
    const { emf } = await captured(() =>
      infer(served.url, request(1), '/v2/models/attacker-chosen-name/infer'),
    );
    expect(emf).toHaveLength(1);
    expect(emf[0]).toMatchObject({ model: 'fraud', version: '1.4.0', ClientErrors: 1 });
  });
});

describe('a fault (5xx)', () => {
  it('answers a generic 500 naming the request id, and logs ERROR with the stack', async () => {
    const logs: Record<string, unknown>[] = [];
    const emf: Record<string, unknown>[] = [];
    const model = served.model;
    const failing = {
      ...model,
      signature: model.signature,
      run: () => Promise.reject(new TypeError('boom in the model')),
    };
    const app = createApp({
      models: new ModelSlot({ model: failing as typeof model }),
      logger: createRequestLog({ sink: (l) => logs.push(JSON.parse(l)) }),
      metrics: createRequestMetrics({ sink: (l) => emf.push(JSON.parse(l)) }),
    });
    const response = await app.request(PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-500' },
      body: JSON.stringify(request(1)),
    });
    expect(response.status).toBe(500);
    expect(response.headers.get('x-request-id')).toBe('req-500');
    expect(await response.json()).toEqual({ error: 'internal server error (request id req-500)' });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ level: 'ERROR', status: 500, request_id: 'req-500' });
    expect(logs[0]?.error).toMatchObject({ name: 'TypeError', message: 'boom in the model' });
    expect((logs[0]?.error as { stack?: string } | undefined)?.stack).toContain(
      'TypeError: boom in the model',
    );
    expect(emf).toEqual([]); // aggregated until the interval or a flush
    await app.flushTelemetry();
    expect(emf[0]).toMatchObject({ ServerErrors: 1, ClientErrors: 0 });
  });
});

const record = (over: Partial<RequestRecord> = {}): RequestRecord => ({
  requestId: 'r',
  method: 'POST',
  path: PATH,
  status: 200,
  latencyMs: 2,
  operation: 'infer',
  model: { name: 'fraud', version: '1.4.0' },
  ...over,
});

describe('batched reports (the Node server)', () => {
  it('hands requests to the log and metrics after the responses, in order, and all of them at flush', async () => {
    const logs: Record<string, unknown>[] = [];
    const emf: Record<string, unknown>[] = [];
    const app = createApp({
      models: served.slot,
      logger: createRequestLog({ sink: (l) => logs.push(JSON.parse(l)) }),
      metrics: createRequestMetrics({ sink: (l) => emf.push(JSON.parse(l)) }),
      batchReports: true,
    });
    const post = (id: string) =>
      app.request(PATH, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        body: JSON.stringify(request(2)),
      });
    const answers = await Promise.all([post('b-1'), post('b-2'), post('b-3')]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(logs).toEqual([]); // not yet: after this turn of the event loop
    await new Promise((r) => setImmediate(r));
    expect(logs.map((l) => l.request_id).sort()).toEqual(['b-1', 'b-2', 'b-3']);
    expect((await post('b-4')).status).toBe(200);
    await app.flushTelemetry(); // at shutdown: whatever is queued, then the metrics
    expect(logs.map((l) => l.request_id)).toContain('b-4');
    expect(emf).toHaveLength(1);
    expect(emf[0]).toMatchObject({ Requests: [1, 1, 1, 1], BatchSize: [2, 2, 2, 2] });
  });
});

describe('metrics aggregation (interval mode)', () => {
  it(`splits a busy interval into documents of at most ${MAX_REQUESTS_PER_DOCUMENT} requests per model version, losing none`, () => {
    const docs: Record<string, unknown>[] = [];
    const metrics = createRequestMetrics({ sink: (l) => docs.push(JSON.parse(l)) });
    for (let i = 0; i < 250; i++) {
      const version = i % 5 === 0 ? '2.0.0' : '1.4.0'; // a hot swap in the middle of the interval
      metrics.recordRequest(
        record({ latencyMs: i, status: i % 7 === 0 ? 400 : 200, model: { name: 'fraud', version } }),
      );
    }
    metrics.recordRequest(record({ operation: 'health' })); // not counted
    // Full documents go out at once; the rest waits for the interval (or a flush).
    expect(docs.map((d) => [d.version, values(d, 'Requests').length])).toEqual([
      ['1.4.0', 100],
      ['1.4.0', 100],
    ]);
    metrics.flush();
    expect(docs.map((d) => [d.version, values(d, 'Requests').length])).toEqual([
      ['1.4.0', 100],
      ['1.4.0', 100],
      ['2.0.0', 50],
    ]);
    for (const doc of docs) {
      expect(emfShape(doc)[0]).toMatchObject({
        Namespace: 'maap',
        Dimensions: [['service', 'model', 'version']],
      });
      for (const name of ['Requests', 'Latency', 'ClientErrors', 'ServerErrors']) {
        expect(values(doc, name)).toHaveLength(values(doc, 'Requests').length);
      }
    }
    const latencies = docs.flatMap((d) => values(d, 'Latency') as number[]);
    expect(latencies.sort((a, b) => a - b)).toEqual(Array.from({ length: 250 }, (_, i) => i));
    const clientErrors = docs.flatMap((d) => values(d, 'ClientErrors') as number[]);
    expect(clientErrors.reduce((a, b) => a + b, 0)).toBe(Math.ceil(250 / 7));
    metrics.flush(); // nothing pending: no document, no warning
    expect(docs).toHaveLength(3);
  });

  it('with a Metrics of its own, keeps each batch size in the document of its request (99 per document)', () => {
    const docs: Record<string, unknown>[] = [];
    const metrics = createRequestMetrics({
      metrics: new Metrics({ namespace: 'maap', serviceName: 'maap-predictor' }),
      sink: (l) => docs.push(JSON.parse(l)),
    });
    // 100 requests; the first was refused before its inputs were read (no batch size).
    for (let i = 0; i < 100; i++) {
      metrics.recordRequest(
        record({ latencyMs: i, ...(i === 0 ? { batchSize: undefined } : { batchSize: i }) }),
      );
    }
    metrics.flush();
    expect(docs.map((d) => values(d, 'Requests').length)).toEqual([99, 1]);
    expect(docs.map((d) => values(d, 'BatchSize'))).toEqual([
      Array.from({ length: 98 }, (_, i) => i + 1),
      [99],
    ]);
  });

  it('publishes on its interval without a flush', async () => {
    const docs: Record<string, unknown>[] = [];
    const metrics = createRequestMetrics({ intervalMs: 20, sink: (l) => docs.push(JSON.parse(l)) });
    metrics.recordRequest(record({ latencyMs: 1.5 }));
    metrics.recordRequest(record({ latencyMs: 2.5, batchSize: 8 }));
    expect(docs).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(docs).toHaveLength(1);
    expect(docs[0]).toMatchObject({ Requests: [1, 1], Latency: [1.5, 2.5], BatchSize: 8 });
  });
});

describe('configuration', () => {
  it('takes the service name from POWERTOOLS_SERVICE_NAME, else maap-predictor', () => {
    expect(serviceName({})).toBe('maap-predictor');
    expect(serviceName({ POWERTOOLS_SERVICE_NAME: 'fraud-api' })).toBe('fraud-api');
    const lines: string[] = [];
    createRequestLog({ serviceName: 'fraud-api', sink: (l) => lines.push(l) }).logRequest({
      requestId: 'r',
      method: 'GET',
      path: '/v2',
      status: 200,
      latencyMs: 1,
      operation: 'server-metadata',
    });
    expect(JSON.parse(lines[0] as string)).toMatchObject({ service: 'fraud-api', request_id: 'r' });
  });

  it('with manual flushing, publishes only on flush (once per Lambda invocation), with the request id', () => {
    const docs: string[] = [];
    const metrics = createRequestMetrics({ flush: 'manual', sink: (l) => docs.push(l) });
    metrics.recordRequest(record({ requestId: 'req-lambda' }));
    expect(docs).toEqual([]);
    metrics.flush();
    expect(docs).toHaveLength(1);
    expect(JSON.parse(docs[0] as string)).toMatchObject({
      _aws: { CloudWatchMetrics: [{ Namespace: 'maap' }] },
      Requests: 1,
      request_id: 'req-lambda',
    });
    metrics.flush(); // nothing stored: no document, no warning
    expect(docs).toHaveLength(1);
  });
});

/** A stream that records what it is given. */
function recorder(): LineStream & { text(): string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return Object.assign(stream, { text: () => chunks.join('') }) as unknown as LineStream & {
    text(): string;
  };
}

describe('the buffered log output', () => {
  it('prints the INFO line exactly as powertools does, and lets powertools print it once keys are added', () => {
    const out = recorder();
    const output = bufferedLines({ stream: out, flushAtExit: false });
    const viaPowertools: string[] = [];
    const fast = createRequestLog({ output });
    const reference = createRequestLog({ sink: (l) => viaPowertools.push(l) });
    const records = [
      record({ requestId: 'a"b\\c', batchSize: 4, latencyMs: 0.123456 }),
      record({ status: 404, error: 'unknown model "modèle→✓"\n', model: undefined, operation: 'other' }),
      record({ method: 'GET', path: '/v2/health/live', operation: 'health', batchSize: undefined }),
    ];
    for (const r of records) {
      fast.logRequest(r);
      reference.logRequest(r);
    }
    output.flush();
    const lines = out.text().trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    const withoutTime = (l: string) => l.replace(/"timestamp":"[^"]+"/, '"timestamp":"T"');
    expect(lines.map(withoutTime)).toEqual(viaPowertools.map(withoutTime));
    for (const line of lines) expect(new Date(JSON.parse(line).timestamp).getTime()).not.toBeNaN();

    fast.logger.appendKeys({ tenant: 'acme' });
    fast.logRequest(records[0] as RequestRecord);
    output.flush();
    expect(JSON.parse(out.text().trimEnd().split('\n')[3] as string)).toMatchObject({
      tenant: 'acme',
      request_id: 'a"b\\c',
    });
  });

  it('prints every kind of INFO line exactly as powertools does, as the kept parts change from line to line', () => {
    const out = recorder();
    const output = bufferedLines({ stream: out, flushAtExit: false });
    const viaPowertools: string[] = [];
    const fast = createRequestLog({ output, serviceName: 'prédicteur "α"' });
    const reference = createRequestLog({ serviceName: 'prédicteur "α"', sink: (l) => viaPowertools.push(l) });
    const other = { name: 'fraud', version: '1.5.0-rc.1' };
    // One model object whose version changes between lines: the line follows what it says, not which object it is.
    const changing = { name: 'fraud', version: '2.0.0' };
    const records = [
      record({ requestId: randomUUID(), batchSize: 1, latencyMs: 0.0004 }),
      record({ requestId: 'a'.repeat(128), batchSize: 64, latencyMs: 123456.78949 }),
      record({ requestId: 'id:with/@=+._-', model: other, batchSize: 2, latencyMs: 1e-9 }),
      record({ model: other, status: 404, path: '/v2/models/modèle→✓/infer', latencyMs: 7 }),
      record({ model: undefined, operation: 'health', path: '/v2/health/live' }),
      record({ requestId: 'é', method: 'GET', path: '/v2', operation: 'server-metadata' }),
      record({ requestId: 'tab\there', status: 413, batchSize: undefined }),
      record({ status: 400, error: 'bad "input" \u0000', batchSize: 3 }),
      record({ requestId: randomUUID(), batchSize: 5 }),
      record({ model: undefined, batchSize: 5 }),
      record({ model: changing, batchSize: 4, latencyMs: -1.2345678901234567e-6 }),
      record({ model: changing, batchSize: Number.MAX_SAFE_INTEGER, latencyMs: 1e21 }),
    ];
    for (const [i, r] of records.entries()) {
      if (i === records.length - 1) changing.version = '2.0.1';
      fast.logRequest(r);
      reference.logRequest(r);
    }
    output.flush();
    const withoutTime = (l: string) => l.replace(/"timestamp":"[^"]+"/, '"timestamp":"T"');
    expect(out.text().trimEnd().split('\n').map(withoutTime)).toEqual(viaPowertools.map(withoutTime));
  });

  it('stamps each line with the time it was logged at, to the millisecond', () => {
    const out = recorder();
    const output = bufferedLines({ stream: out, flushAtExit: false });
    const log = createRequestLog({ output });
    const times = [
      0,
      Date.UTC(2026, 0, 2, 3, 4, 5, 6),
      Date.UTC(2026, 0, 2, 3, 4, 5, 6),
      Date.UTC(2027, 5, 6, 7, 8, 9, 999),
    ];
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      for (const time of times) {
        vi.setSystemTime(time);
        log.logRequest(record({ batchSize: 1 }));
      }
    } finally {
      vi.useRealTimers();
    }
    output.flush();
    const stamps = out
      .text()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l).timestamp);
    expect(stamps).toEqual(times.map((t) => new Date(t).toISOString()));
  });

  it('queues a line its encoder writes, and nothing of one it gives up on or that is too long', () => {
    const out = recorder();
    const output = bufferedLines({ stream: out, maxBytes: 100, flushAtExit: false });
    const abc = (buf: Buffer, at: number, text: string) => at + buf.write(text, at);
    expect(output.writeEncoded(10, abc, 'one')).toBe(true);
    // An encoder that writes, then gives up: what it wrote is not queued.
    const givesUp = (buf: Buffer, at: number) => {
      abc(buf, at, 'half');
      return -1;
    };
    expect(output.writeEncoded(10, givesUp, undefined)).toBe(false);
    expect(output.writeEncoded(200 * 1024, abc, 'x')).toBe(false); // more than the queue holds
    expect(() => output.writeEncoded(2, abc, 'three')).toThrow(/wrote 5 bytes, over its 2/);
    output.write('two');
    output.flush();
    expect(out.text()).toBe('one\ntwo\n');
  });

  it('writes queued lines in order, in one write per flush', () => {
    const writes: string[] = [];
    const stream = Object.assign(recorder(), {
      write(chunk: string | Uint8Array) {
        writes.push(Buffer.from(chunk).toString());
        return true;
      },
    });
    const output = bufferedLines({ stream, maxBytes: 100, flushAtExit: false });
    output.write('one');
    output.write('two');
    expect(writes).toEqual([]);
    output.flush();
    expect(writes).toEqual(['one\ntwo\n']);
    output.write('x'.repeat(120)); // over maxChars: written at once
    expect(writes).toHaveLength(2);
    output.flush(); // nothing queued
    expect(writes).toHaveLength(2);
  });

  it('writes the log lines and metrics of the last requests at shutdown', async () => {
    const out = recorder();
    const output = bufferedLines({ stream: out, maxDelayMs: 60_000, flushAtExit: false });
    const app = createApp({
      models: served.slot,
      logger: createRequestLog({ output }),
      metrics: createRequestMetrics({ output, intervalMs: 60_000 }),
    });
    const running = await startServer({ app, port: 0, handleSignals: false });
    for (let i = 0; i < 3; i++) expect((await infer(running.url, request(2), PATH)).status).toBe(200);
    expect((await call(running.url, 'GET', '/v2/health/live')).status).toBe(200);
    expect(out.text()).toBe(''); // everything is still queued
    await running.shutdown();
    const lines = out
      .text()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.message === 'request').map((l) => l.operation)).toEqual([
      'infer',
      'infer',
      'infer',
      'health',
    ]);
    const docs = lines.filter((l) => l._aws);
    expect(docs).toHaveLength(1);
    expect(docs[0]).toMatchObject({
      model: 'fraud',
      version: '1.4.0',
      Requests: [1, 1, 1],
      BatchSize: [2, 2, 2],
    });
  });

  it('never blocks on a stalled pipe, and writes everything still queued when the process exits', async () => {
    const { dir, cleanup } = await tempDir('maap-exit-');
    try {
      const script = join(dir, 'exit.ts');
      const lib = (p: string) => JSON.stringify(join(REPO, 'lib/telemetry', p));
      await writeFile(
        script,
        [
          `import { stdoutLines } from ${lib('output.ts')};`,
          `import { createRequestLog } from ${lib('request-log.ts')};`,
          `import { createRequestMetrics } from ${lib('request-metrics.ts')};`,
          'const output = stdoutLines();',
          'const log = createRequestLog({ output });',
          'const metrics = createRequestMetrics({ output });',
          'const started = performance.now();',
          'for (let i = 0; i < 5000; i++) {',
          "  const r = { requestId: 'r' + i, method: 'POST', path: '/p', status: 200, latencyMs: 1, operation: 'infer', model: { name: 'm', version: '1' } } as const;",
          '  log.logRequest(r);',
          '  metrics.recordRequest(r);',
          '}',
          'metrics.recordRequest({ requestId: "last", method: "POST", path: "/p", status: 500, latencyMs: 1, operation: "infer" });',
          'output.write(JSON.stringify({ elapsed_ms: performance.now() - started }));',
          'process.exit(0);',
        ].join('\n'),
      );
      const child = spawn(join(REPO, 'node_modules/.bin/tsx'), [script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      // Nobody reads for a while: the pipe (64 KiB) fills up long before the ~1.5 MB are written.
      child.stdout.pause();
      await new Promise((r) => setTimeout(r, 1000));
      let text = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => (text += d));
      child.stdout.resume();
      const code = await new Promise((r) => child.on('close', r));
      expect(code).toBe(0);
      const lines = text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      const requests = lines.filter((l) => l.message === 'request');
      expect(requests.map((l) => l.request_id)).toEqual(Array.from({ length: 5000 }, (_, i) => `r${i}`));
      const docs = lines.filter((l) => l._aws);
      expect(docs.reduce((n, d) => n + values(d, 'Requests').length, 0)).toBe(5001);
      expect(docs.at(-1)).toMatchObject({ model: 'none', ServerErrors: 1 }); // published by the exit hook
      // The writes did not wait for the reader (it started a second later).
      const elapsed = lines.find((l) => l.elapsed_ms !== undefined)?.elapsed_ms;
      expect(elapsed).toBeLessThan(700);
    } finally {
      await cleanup();
    }
  }, 20_000);
});
