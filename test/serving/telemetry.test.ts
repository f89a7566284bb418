/**
 * One structured log line per request and one EMF document per inference request, with the fields operators
 * query on, captured through injected sinks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../lib/serving/app.ts';
import { ModelSlot } from '../../lib/serving/host.ts';
import { createRequestLog } from '../../lib/telemetry/request-log.ts';
import { createRequestMetrics } from '../../lib/telemetry/request-metrics.ts';
import { serviceName } from '../../lib/telemetry/sink.ts';
import { mlpModel } from '../fixtures/models.ts';
import { call, infer, type Served, serveFixture } from './harness.ts';

let served: Served;
beforeAll(async () => {
  served = await serveFixture(mlpModel(), { pack: { name: 'fraud', version: '1.4.0' } });
});
afterAll(() => served.close());

const PATH = '/v2/models/fraud/infer';
const request = (rows: number) => ({
  inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 4], data: new Array(rows * 4).fill(0.5) }],
});

/** Runs `fn`, returning the log lines and EMF documents it produced. */
async function captured(fn: () => Promise<unknown>) {
  const [logs, emf] = [served.logs.length, served.emf.length];
  await fn();
  return { logs: served.logs.slice(logs), emf: served.emf.slice(emf) };
}

function emfShape(doc: Record<string, unknown>) {
  const aws = doc._aws as {
    Timestamp: number;
    CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: unknown[] }[];
  };
  return aws.CloudWatchMetrics;
}

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
      {
        Namespace: 'maap',
        Dimensions: [['service', 'model', 'version']],
        Metrics: [
          { Name: 'Requests', Unit: 'Count' },
          { Name: 'Latency', Unit: 'Milliseconds' },
          { Name: 'ClientErrors', Unit: 'Count' },
          { Name: 'ServerErrors', Unit: 'Count' },
          { Name: 'BatchSize', Unit: 'Count' },
        ],
      },
    ]);
    expect(doc).toMatchObject({
      service: 'maap-predictor',
      model: 'fraud',
      version: '1.4.0',
      Requests: 1,
      ClientErrors: 0,
      ServerErrors: 0,
      BatchSize: 3,
      request_id: 'req-ok-1',
    });
    expect(doc.Latency).toBe(line.latency_ms);
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
    expect(await response.json()).toEqual({ error: 'internal server error (request id req-500)' });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ level: 'ERROR', status: 500, request_id: 'req-500' });
    expect(logs[0]?.error).toMatchObject({ name: 'TypeError', message: 'boom in the model' });
    expect((logs[0]?.error as { stack?: string } | undefined)?.stack).toContain(
      'TypeError: boom in the model',
    );
    expect(emf[0]).toMatchObject({ ServerErrors: 1, ClientErrors: 0 });
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

  it('with manual flushing, publishes only on flush (once per Lambda invocation)', () => {
    const docs: string[] = [];
    const metrics = createRequestMetrics({ flush: 'manual', sink: (l) => docs.push(l) });
    const record = {
      requestId: 'r',
      method: 'POST',
      path: PATH,
      status: 200,
      latencyMs: 2,
      operation: 'infer' as const,
    };
    metrics.recordRequest({ ...record, model: { name: 'fraud', version: '1.4.0' } });
    expect(docs).toEqual([]);
    metrics.flush();
    expect(docs).toHaveLength(1);
    expect(JSON.parse(docs[0] as string)).toMatchObject({
      _aws: { CloudWatchMetrics: [{ Namespace: 'maap' }] },
      Requests: 1,
    });
    metrics.flush(); // nothing stored: no document, no warning
    expect(docs).toHaveLength(1);
  });
});
