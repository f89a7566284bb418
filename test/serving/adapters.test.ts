/**
 * The two server adapters around the one app: the Lambda adapter (events in, proxy results out) and the Node
 * adapter (node:http), on the edges the correctness and bad-input suites do not reach: event shapes, base64
 * bodies, HEAD, body limits, unread bodies and keep-alive, faults past the app's own error handling. Plus the
 * fetch channel (a real Request in, a real Response out) that an edge runtime uses.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type LoadedModel, loadModel } from '../../lib/inference/model.ts';
import {
  handleLambdaEvent,
  LAMBDA_RESPONSE_BYTES,
  lambdaAnswerLimit,
} from '../../lib/serving/adapters/lambda.ts';
import { MAX_PIPELINED, nodeListener } from '../../lib/serving/adapters/node.ts';
import { createApp, type PredictorApp } from '../../lib/serving/app.ts';
import { PlainResponse } from '../../lib/serving/exchange.ts';
import { ModelSlot } from '../../lib/serving/host.ts';
import { createRequestLog } from '../../lib/telemetry/request-log.ts';
import { createRequestMetrics } from '../../lib/telemetry/request-metrics.ts';
import { type RunningServer, startServer } from '../../runtime/server.ts';
import { identityModel, mlpModel } from '../fixtures/models.ts';
import { packFixture, tempDir } from '../helpers/packages.ts';
import { EVENT_KINDS, type EventKind, lambdaEvent } from '../runtime/lambda-events.ts';
import { EXPECTED, INFER_REQUEST } from '../runtime/mlp-registry.ts';
import { deferred } from './harness.ts';

const LIMIT = 4096;
const INFER = '/v2/models/mlp/infer';
let work: { dir: string; cleanup: () => Promise<void> };
let model: LoadedModel;
let app: PredictorApp;
let logs: Record<string, unknown>[];

beforeAll(async () => {
  work = await tempDir('maap-adapters-');
  const pkg = await packFixture(work.dir, mlpModel(), { name: 'mlp', version: '1.0.0' });
  model = await loadModel(pkg.path, { intraOpThreads: 1 });
  logs = [];
  app = createApp({
    models: new ModelSlot({ model }),
    bodyLimit: LIMIT,
    logger: createRequestLog({ sink: (line) => logs.push(JSON.parse(line)) }),
    metrics: createRequestMetrics({ sink: () => {} }),
  });
});

afterAll(async () => {
  await model?.close();
  await work?.cleanup();
});

type Result = {
  statusCode: number;
  headers?: Record<string, string>;
  multiValueHeaders?: Record<string, string[]>;
  body: string;
  isBase64Encoded: boolean;
};
/** A result header, from `headers` or `multiValueHeaders`. */
const headerOf = (r: Result, name: string) => r.headers?.[name] ?? r.multiValueHeaders?.[name]?.[0];
const invoke = (event: unknown) => handleLambdaEvent(app, event) as Promise<Result>;
const bodyOf = (r: Result) => JSON.parse(r.body) as { error?: string; outputs?: { data: number[] }[] };

describe('the Lambda adapter', () => {
  it.each([
    ['an empty object', {}],
    ['null', null],
    ['a string', 'hello'],
    ['an SQS message', { Records: [{ eventSource: 'aws:sqs', body: '{}' }] }],
    ['a 2.0 event without requestContext.http', { version: '2.0', rawPath: '/v2' }],
  ])(
    'answers %s with a 400 naming the events it takes, with a request id, and says so on stderr',
    async (_what, event) => {
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      let result: Result;
      let line = '';
      try {
        result = await invoke(event);
        line = String(stderr.mock.calls[0]?.[0]);
        expect(stderr).toHaveBeenCalledWith(
          expect.stringMatching(
            /^maap: request [0-9a-f-]{36} answered 400: not an HTTP event: .* \(the event: .*\)\n$/,
          ),
        );
      } finally {
        stderr.mockRestore();
      }
      expect(result.statusCode).toBe(400);
      expect(headerOf(result, 'content-type')).toBe('application/json');
      expect(headerOf(result, 'x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      // The line on stderr names the same request id as the answer.
      expect(line).toContain(`request ${headerOf(result, 'x-request-id')} answered`);
      expect(bodyOf(result).error).toMatch(/^not an HTTP event: .*Function URL.*HTTP API.*REST API/);
    },
  );

  it('answers a malformed event (multi-value headers that are not lists) with a 400, not a throw', async () => {
    const event = lambdaEvent('rest-api-v1', { method: 'GET', path: '/v2/health/live' });
    event.multiValueHeaders = { accept: 'application/json' };
    const result = await invoke(event);
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result).error).toMatch(/^malformed HTTP event/);
  });

  it('keeps a path an HTTP API passes decoded in one piece: a ? or # in it does not start a query', async () => {
    const at = async (rawPath: string) => {
      const event = lambdaEvent('http-api-v2', { method: 'GET', path: '/v2/health/live' });
      event.rawPath = rawPath;
      return invoke(event);
    };
    // `/v2/models/mlp%3F/ready` as an HTTP API passes it: model "mlp?", not mlp's readiness with a query.
    const question = await at('/v2/models/mlp?/ready');
    expect(question.statusCode).toBe(404);
    expect(bodyOf(question).error).toMatch(/^unknown model "mlp\?"/);
    const hash = await at('/v2/models/mlp#/ready');
    expect(bodyOf(hash).error).toMatch(/^unknown model "mlp#"/);
    const spaced = await at('/v2/models/my model/ready');
    expect(bodyOf(spaced).error).toMatch(/^unknown model "my model"/);
    const percent = await at('/v2/models/100%/ready');
    expect(bodyOf(percent).error).toMatch(/^unknown model "100%"/);
    const accented = await at('/v2/models/modèle/ready');
    expect(bodyOf(accented).error).toMatch(/^unknown model "modèle"/);
    // Decoded once only: `%6Dlp` here is what a client sent as %256Dlp, a model named "%6Dlp", not mlp.
    const twice = await at('/v2/models/%6Dlp/ready');
    expect(bodyOf(twice).error).toMatch(/^unknown model "%6Dlp"/);
    // A lone surrogate (not UTF-8) is replaced, not a throw.
    expect(bodyOf(await at('/v2/models/a\ud800/ready')).error).toMatch(/^unknown model "a\ufffd"/);
    // An HTTP API's payload format 1.0 says so (version 1.0) and passes its path decoded too.
    const v1 = lambdaEvent('rest-api-v1', { method: 'GET', path: '/v2/models/%6Dlp/ready' });
    v1.version = '1.0';
    expect(bodyOf(await invoke(v1)).error).toMatch(/^unknown model "%6Dlp"/);
    // A path passed as it came (a Function URL, a REST API) keeps its escapes, decoded once.
    for (const kind of ['function-url', 'rest-api-v1'] as const) {
      const event = lambdaEvent(kind, { method: 'GET', path: '/v2/models/%6Dlp/ready' });
      expect((await invoke(event)).statusCode).toBe(200);
      const question = lambdaEvent(kind, { method: 'GET', path: '/v2/models/mlp%3F/ready' });
      expect(bodyOf(await invoke(question)).error).toMatch(/^unknown model "mlp\?"/);
    }
  });

  it('routes on the path alone: a Host header cannot change the route', async () => {
    const event = lambdaEvent('function-url', { method: 'GET', path: '/v2/health/live' });
    (event.headers as Record<string, string>).host = 'evil/v2/models/x';
    expect((await invoke(event)).statusCode).toBe(200);
  });

  it('reads REST API multi-value headers whatever their case, and answers in multi-value headers', async () => {
    const event = lambdaEvent('rest-api-v1', { method: 'GET', path: '/v2/health/live' });
    event.headers = { 'x-request-id': 'from-single-value' };
    event.multiValueHeaders = { 'X-Request-Id': ['from-multi-value'], Accept: ['application/json'] };
    const result = await invoke(event);
    expect(result.statusCode).toBe(200);
    expect(result.headers).toBeUndefined();
    expect(result.multiValueHeaders?.['x-request-id']).toEqual(['from-multi-value']);
  });

  it('answers an event without multi-value headers (an ALB target group) in plain headers', async () => {
    const event = lambdaEvent('rest-api-v1', { method: 'GET', path: '/v2/health/live' });
    delete event.multiValueHeaders;
    event.requestContext = {
      elb: { targetGroupArn: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/maap/1' },
    };
    const result = await invoke(event);
    expect(result.statusCode).toBe(200);
    expect(result.multiValueHeaders).toBeUndefined();
    expect(result.headers?.['content-type']).toBe('application/json');
  });

  it.each(EVENT_KINDS)(
    "answers with API Gateway's request id when the caller sent none, the caller's when it did (%s)",
    async (kind) => {
      const event = lambdaEvent(kind, { method: 'GET', path: '/v2/health/live' });
      const gatewayId = (event.requestContext as { requestId: string }).requestId;
      expect(headerOf(await invoke(event), 'x-request-id')).toBe(gatewayId);
      (event.headers as Record<string, string>)['X-Request-Id'] = 'from-the-caller';
      if (event.multiValueHeaders) {
        (event.multiValueHeaders as Record<string, string[]>)['X-Request-Id'] = ['from-the-caller'];
      }
      expect(headerOf(await invoke(event), 'x-request-id')).toBe('from-the-caller');
    },
  );

  it("routes past an HTTP API's named stage, which leads rawPath, and nothing else", async () => {
    const staged = (stage: string, path: string) => {
      const event = lambdaEvent('http-api-v2', { method: 'GET', path });
      (event.requestContext as Record<string, unknown>).stage = stage;
      return invoke(event);
    };
    expect((await staged('prod', '/prod/v2/health/ready')).statusCode).toBe(200);
    expect((await staged('prod', '/prod')).statusCode).toBe(404); // the stage's root: no route
    // A custom domain reaches a named stage without the segment; `$default` never has one.
    expect((await staged('prod', '/v2/health/ready')).statusCode).toBe(200);
    expect((await staged('$default', '/v2/health/ready')).statusCode).toBe(200);
    // On a custom domain the stage is mapped, not in the path: a stage named like a route segment stays put.
    const mapped = lambdaEvent('http-api-v2', { method: 'GET', path: '/v2/health/ready' });
    Object.assign(mapped.requestContext as Record<string, unknown>, {
      stage: 'v2',
      domainName: 'api.example.com',
    });
    expect((await invoke(mapped)).statusCode).toBe(200);
    const other = await staged('prod', '/production/v2/health/ready');
    expect(other.statusCode).toBe(404);
    expect(bodyOf(other).error).toMatch(/no such endpoint: GET \/production\/v2\/health\/ready/);
  });

  /** An event of `kind` as a custom domain (or CloudFront, for a Function URL) passes it on. */
  const onCustomDomain = (kind: EventKind, call: Parameters<typeof lambdaEvent>[1]) => {
    const event = lambdaEvent(kind, call);
    if (kind !== 'function-url')
      (event.requestContext as Record<string, unknown>).domainName = 'api.example.com';
    return event;
  };

  it.each(EVENT_KINDS)("routes past a custom domain's base path given as basePath (%s)", async (kind) => {
    const event = onCustomDomain(kind, { method: 'POST', path: `/ml${INFER}`, body: INFER_REQUEST });
    expect((await invoke(event)).statusCode).toBe(404);
    for (const basePath of ['/ml', 'ml/', '/ml/']) {
      const served = (await handleLambdaEvent(app, event, { basePath })) as Result;
      expect(served.statusCode).toBe(200);
      for (const [i, v] of EXPECTED.entries()) expect(bodyOf(served).outputs?.[0]?.data[i]).toBeCloseTo(v, 5);
    }
    // Only a whole leading segment is removed, and a path without it is routed as it is.
    const mlx = onCustomDomain(kind, { method: 'GET', path: '/mlx/v2/health/ready' });
    expect(((await handleLambdaEvent(app, mlx, { basePath: '/ml' })) as Result).statusCode).toBe(404);
    const plain = onCustomDomain(kind, { method: 'GET', path: '/v2/health/ready' });
    expect(((await handleLambdaEvent(app, plain, { basePath: '/ml' })) as Result).statusCode).toBe(200);
  });

  it.each(['http-api-v2', 'rest-api-v1'] as const)(
    "keeps the base path on API Gateway's own host, where routes and their authorizers matched that path (%s)",
    async (kind) => {
      const event = lambdaEvent(kind, { method: 'GET', path: '/ml/v2/health/ready' });
      expect(String((event.requestContext as Record<string, unknown>).domainName)).toMatch(/\.execute-api\./);
      const result = (await handleLambdaEvent(app, event, { basePath: '/ml' })) as Result;
      expect(result.statusCode).toBe(404);
      expect(bodyOf(result).error).toMatch(/no such endpoint: GET \/ml\/v2\/health\/ready/);
    },
  );

  it('decodes a base64 body, and refuses one that is not base64 with a 400', async () => {
    const event = lambdaEvent('http-api-v2', { method: 'POST', path: INFER, body: INFER_REQUEST });
    event.body = Buffer.from(JSON.stringify(INFER_REQUEST)).toString('base64');
    event.isBase64Encoded = true;
    const ok = await invoke(event);
    expect(ok.statusCode).toBe(200);
    for (const [i, v] of EXPECTED.entries()) expect(bodyOf(ok).outputs?.[0]?.data[i]).toBeCloseTo(v, 5);

    event.body = '{not base64!}';
    const bad = await invoke(event);
    expect(bad.statusCode).toBe(400);
    expect(bodyOf(bad).error).toBe('the request body is marked base64-encoded but is not valid base64');
  });

  it('refuses a base64 body whose bytes are not UTF-8 with a 400, instead of decoding U+FFFD', async () => {
    const event = lambdaEvent('function-url', { method: 'POST', path: INFER, body: INFER_REQUEST });
    event.body = Buffer.concat([
      Buffer.from([0xff, 0xc3]),
      Buffer.from(JSON.stringify(INFER_REQUEST)),
    ]).toString('base64');
    event.isBase64Encoded = true;
    const bad = await invoke(event);
    expect(bodyOf(bad).error).toBe(
      'the request body is not valid UTF-8 (an ill-formed sequence at byte 0): JSON text must be UTF-8',
    );
    expect(bad.statusCode).toBe(400);
  });

  it.each([false, true])('answers a body over the limit with a 413 (base64: %s)', async (base64) => {
    const big = {
      inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
      id: 'x'.repeat(LIMIT),
    };
    const event = lambdaEvent('function-url', { method: 'POST', path: INFER, body: big });
    if (base64) {
      event.body = Buffer.from(event.body as string).toString('base64');
      event.isBase64Encoded = true;
    }
    const result = await invoke(event);
    expect(result.statusCode).toBe(413);
    expect(bodyOf(result).error).toBe(`the request body is larger than the limit of ${LIMIT} bytes`);
  });

  it('answers HEAD with the headers of GET and no body', async () => {
    const event = lambdaEvent('function-url', { method: 'GET', path: '/v2/health/ready' });
    (event.requestContext as { http: { method: string } }).http.method = 'HEAD';
    const result = await invoke(event);
    expect(result).toMatchObject({ statusCode: 200, body: '', isBase64Encoded: false });
    expect(headerOf(result, 'content-type')).toBe('application/json');
  });

  it('routes on the path whatever the query string and cookies', async () => {
    const v2 = lambdaEvent('http-api-v2', { method: 'GET', path: '/v2/models/mlp' });
    v2.rawQueryString = 'verbose=1&x=%2F';
    v2.cookies = ['session=abc', 'theme=dark'];
    const v1 = lambdaEvent('rest-api-v1', { method: 'GET', path: '/v2/models/mlp' });
    v1.multiValueQueryStringParameters = { verbose: ['1', '2'] };
    for (const event of [v2, v1]) {
      const result = await invoke(event);
      expect(result.statusCode).toBe(200);
      expect(JSON.parse(result.body)).toMatchObject({ name: 'mlp', versions: ['1.0.0'] });
    }
  });

  it('routes on the decoded path: percent-escapes in rawPath and a v1 path without its leading slash', async () => {
    const v2 = lambdaEvent('function-url', { method: 'GET', path: '/v2/models/ml%70' });
    const v1 = lambdaEvent('rest-api-v1', { method: 'GET', path: '/v2/models/mlp' });
    (v1 as { path: string }).path = 'v2/models/mlp';
    for (const event of [v2, v1]) {
      const result = await invoke(event);
      expect(result.statusCode).toBe(200);
      expect(JSON.parse(result.body)).toMatchObject({ name: 'mlp' });
    }
    const slashed = await invoke(lambdaEvent('function-url', { method: 'GET', path: '/v2/models/a%2Fb' }));
    expect(slashed.statusCode).toBe(404);
    expect(JSON.parse(slashed.body).error).toContain('unknown model "a/b"');
  });

  it('turns a fault past the app (its fetch throws) into a 500 result, and serves on', async () => {
    const broken = {
      fetch: () => {
        throw new Error('boom');
      },
    };
    const event = lambdaEvent('function-url', { method: 'GET', path: '/v2/health/live' });
    const result = await handleLambdaEvent(broken, event);
    expect(result.statusCode).toBe(500);
    expect(JSON.parse(result.body)).toEqual({ error: 'internal server error' });
    expect((await invoke(event)).statusCode).toBe(200);
  });
});

describe('the Node adapter', () => {
  let running: RunningServer;
  beforeAll(async () => {
    running = await startServer({ app, port: 0, handleSignals: false });
  });
  afterAll(async () => {
    await running?.shutdown();
  });

  /** One request over `agent`; resolves with the status, headers, body and the socket it used. */
  function send(
    method: string,
    path: string,
    body: string | undefined,
    agent: Agent,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; headers: IncomingMessage['headers']; body: string; socket: unknown }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${running.url}${path}`, { method, agent, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, socket: req.socket }),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('keeps the connection after an early 4xx with a small unread body', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const json = { 'content-type': 'application/json' };
      const refused = await send(
        'POST',
        '/v2/models/other/infer',
        JSON.stringify(INFER_REQUEST),
        agent,
        json,
      );
      expect(refused.status).toBe(404);
      expect(refused.headers.connection).toBe('keep-alive');
      const ok = await send('POST', INFER, JSON.stringify(INFER_REQUEST), agent, json);
      expect(ok.status).toBe(200);
      expect(ok.socket).toBe(refused.socket);
    } finally {
      agent.destroy();
    }
  });

  it('gives up a body cut off by the client (logged as such), and serves on', async () => {
    const before = logs.length;
    await new Promise<void>((resolve, reject) => {
      const socket = connect(running.port, '127.0.0.1', () => {
        socket.write(
          `POST ${INFER} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"inputs":`,
        );
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 50);
      });
      socket.on('error', reject);
    });
    await expect
      .poll(() => logs.slice(before).find((l) => String(l.error_message ?? '').includes('cut off')))
      .toMatchObject({ status: 499, path: INFER }); // nginx's "client closed request"
    const agent = new Agent();
    expect((await send('GET', '/v2/health/ready', undefined, agent)).status).toBe(200);
  });

  it('reads and drops the rest of a body over the limit, answers 413 on the same connection, and serves on', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const big = JSON.stringify({ ...INFER_REQUEST, id: 'x'.repeat(LIMIT * 4) });
      const framings: Record<string, string>[] = [
        { 'transfer-encoding': 'chunked' },
        { 'content-length': String(Buffer.byteLength(big)) }, // refused before a byte is read
      ];
      for (const framing of framings) {
        const refused = await send('POST', INFER, big, agent, {
          'content-type': 'application/json',
          ...framing,
        });
        expect(refused.status).toBe(413);
        expect(JSON.parse(refused.body).error).toBe(
          `the request body is larger than the limit of ${LIMIT} bytes`,
        );
        expect(refused.headers.connection).toBe('keep-alive');
        const ok = await send('POST', INFER, JSON.stringify(INFER_REQUEST), agent, {
          'content-type': 'application/json',
        });
        expect(ok.status).toBe(200);
        expect(ok.socket).toBe(refused.socket);
      }
    } finally {
      agent.destroy();
    }
  });

  it('answers HEAD with the headers of GET, no body and no made-up length', async () => {
    const agent = new Agent();
    const head = await send('HEAD', '/v2/health/ready', undefined, agent);
    expect(head.status).toBe(200);
    expect(head.headers['content-type']).toBe('application/json');
    expect(head.headers['x-request-id']).toBeTruthy();
    expect(head.headers['content-length']).toBeUndefined();
    expect(head.body).toBe('');
  });

  it(`cuts a connection with more than ${MAX_PIPELINED} requests waiting behind the one being answered`, async () => {
    const gate = deferred();
    let first = true;
    const slowFirst = {
      fetch: async () => {
        if (first) {
          first = false;
          await gate.promise;
        }
        return new PlainResponse(200, { 'content-type': 'application/json' }, '{}').asResponse();
      },
    };
    const server = createServer(nodeListener(slowFirst));
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const get = 'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n';
      const exchange = (pipelined: number) =>
        new Promise<string>((resolve, reject) => {
          const socket = connect((server.address() as AddressInfo).port, '127.0.0.1', () =>
            socket.write(get.repeat(1 + pipelined)),
          );
          let text = '';
          socket.setEncoding('utf8');
          socket.on('data', (d: string) => {
            text += d;
            if ((text.match(/HTTP\/1\.1 200/g) ?? []).length === 1 + pipelined) socket.end();
          });
          socket.on('close', () => resolve(text));
          socket.on('error', reject);
        });
      // Over the limit: cut while the first is still waiting for its answer, which is never written.
      const flooded = await exchange(MAX_PIPELINED + 1);
      expect(flooded).toBe('');
      // At the limit, every one is answered, in turn.
      first = true;
      const served = exchange(MAX_PIPELINED);
      setTimeout(() => gate.resolve(), 50);
      expect((await served).match(/HTTP\/1\.1 200/g)).toHaveLength(MAX_PIPELINED + 1);
    } finally {
      gate.resolve();
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });

  it('keeps the connection after an early 4xx to a chunked body, dropping the rest of it', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const big = JSON.stringify({ ...INFER_REQUEST, id: 'x'.repeat(100_000) });
      const refused = await send('POST', '/v2/no-such-endpoint', big, agent, {
        'content-type': 'application/json',
        'transfer-encoding': 'chunked',
      });
      expect(refused.status).toBe(404);
      expect(refused.headers.connection).toBe('keep-alive');
      const ok = await send('GET', '/v2/health/live', undefined, agent);
      expect(ok.status).toBe(200);
      expect(ok.socket).toBe(refused.socket);
    } finally {
      agent.destroy();
    }
  });

  describe('with drainBytes 8 KiB', () => {
    let small: Server;
    let url: string;
    beforeAll(async () => {
      small = createServer(nodeListener(app, { drainBytes: 8 * 1024 }));
      await new Promise<void>((ok) => small.listen(0, '127.0.0.1', ok));
      url = `http://127.0.0.1:${(small.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      small.closeAllConnections();
      await new Promise((ok) => small.close(ok));
    });

    it('when the answer ends the connection (shutting down), answers once the rest of the body is dropped', async () => {
      const closing = createServer(nodeListener(app, { closeConnection: () => true }));
      await new Promise<void>((ok) => closing.listen(0, '127.0.0.1', ok));
      try {
        const socket = connect((closing.address() as AddressInfo).port, '127.0.0.1');
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => (text += d));
        const ended = new Promise<void>((ok) => socket.on('close', () => ok()));
        const chunk = (data: string) => `${data.length.toString(16)}\r\n${data}\r\n`;
        socket.write(
          `POST ${INFER} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
        );
        socket.write(chunk(`{"id":"${'x'.repeat(LIMIT * 2)}`)); // over the limit, not finished
        await new Promise((wait) => setTimeout(wait, 200));
        expect(text).toBe(''); // no answer yet: it would end the connection with the rest unsent
        socket.write(chunk(`${'y'.repeat(1000)}"}`));
        socket.write('0\r\n\r\n');
        await ended;
        expect(text).toMatch(/^HTTP\/1\.1 413 /);
        expect(text).toMatch(/\r\nconnection: close\r\n/i);
      } finally {
        closing.closeAllConnections();
        await new Promise((ok) => closing.close(ok));
      }
    });

    it('answers a 500 when a header the app made is refused, also when the answer waited for the body to be dropped', async () => {
      const broken = {
        fetch: () =>
          new PlainResponse(
            400,
            { 'content-type': 'application/json', 'x-bad': 'a\r\nb' },
            '{}',
          ).asResponse(),
      };
      for (const closeConnection of [false, true]) {
        const server = createServer(nodeListener(broken, { closeConnection: () => closeConnection }));
        await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
        const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
        try {
          const text = await new Promise<string>((resolve, reject) => {
            const socket = connect((server.address() as AddressInfo).port, '127.0.0.1', () => {
              socket.write(
                `POST ${INFER} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`,
              );
              setTimeout(() => socket.end('0\r\n\r\n'), 50); // the body ends after the answer is ready
            });
            let answer = '';
            socket.setEncoding('utf8');
            socket.on('data', (d: string) => {
              answer += d;
            });
            socket.on('close', () => resolve(answer));
            socket.on('error', reject);
          });
          expect(text).toMatch(/^HTTP\/1\.1 500 Internal Server Error\r\n/);
          expect(text).toMatch(/\r\n\r\n\{"error":"internal server error"\}/);
        } finally {
          stderr.mockRestore();
          server.closeAllConnections();
          await new Promise((ok) => server.close(ok));
        }
      }
    });

    it('closes the connection after an early 4xx that leaves a body declared larger unread', async () => {
      const big = JSON.stringify({ ...INFER_REQUEST, id: 'x'.repeat(100_000) });
      const answer = await new Promise<{ status: number; connection: unknown }>((resolve, reject) => {
        const req = httpRequest(
          `${url}/v2/no-such-endpoint`,
          {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'content-length': String(big.length) },
          },
          (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
          },
        );
        req.on('error', reject);
        req.end(big);
      });
      expect(answer).toEqual({ status: 404, connection: 'close' });
    });

    it('cuts off a client that goes on sending past the limit and drainBytes', async () => {
      const sent = await new Promise<number>((resolve) => {
        let bytes = 0;
        const socket = connect((small.address() as AddressInfo).port, '127.0.0.1', () => {
          socket.write(
            `POST ${INFER} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
          );
          const chunk = `2000\r\n${'x'.repeat(0x2000)}\r\n`;
          const pump = (): void => {
            while (!socket.destroyed && bytes < 64 * 1024 * 1024) {
              bytes += 0x2000;
              if (!socket.write(chunk)) {
                socket.once('drain', pump);
                return;
              }
            }
            if (!socket.destroyed) resolve(bytes); // never cut off
          };
          pump();
        });
        socket.on('error', () => {});
        socket.on('close', () => resolve(bytes));
        socket.resume();
      });
      // Cut off long before 64 MiB (the limit is 4 KiB, drainBytes 8 KiB; socket buffers take a few MiB).
      expect(sent).toBeLessThan(64 * 1024 * 1024);
      const ok = await fetch(`${url}/v2/health/live`);
      expect(ok.status).toBe(200);
    });
  });

  it.each([
    ['absolute-form', 'http://localhost/v2/health/live'],
    ['dot segments', '/v2/models/../health/live'],
    ['an encoded dot segment', '/v2/models/%2e%2e/health/live'],
    ['a query string', '/v2/health/live?verbose=1&x=%2F'],
    ['percent-escapes', '/v2/health/%6Cive'],
    ['a fragment', '/v2/health/live#fragment'],
  ])('routes a request target in %s on its normalised path', async (_what, target) => {
    const status = await new Promise<string>((resolve, reject) => {
      const socket = connect(running.port, '127.0.0.1', () => {
        socket.end(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      });
      let text = '';
      socket.on('data', (d) => (text += d));
      socket.on('end', () => resolve(text.split('\r\n')[0] ?? ''));
      socket.on('error', reject);
    });
    expect(status).toBe('HTTP/1.1 200 OK');
  });

  it('reads request headers whatever their case, joining repeated ones as Headers#get does', async () => {
    const raw = async (headers: string): Promise<string> =>
      new Promise<string>((resolve, reject) => {
        const body = JSON.stringify(INFER_REQUEST);
        const socket = connect(running.port, '127.0.0.1', () => {
          socket.end(
            `POST ${INFER} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${headers}` +
              `CONTENT-LENGTH: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          );
        });
        let text = '';
        socket.on('data', (d) => (text += d));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
    const upper = await raw('Content-TYPE: application/json\r\nX-REQUEST-ID: trace-42\r\n');
    expect(upper).toMatch(/^HTTP\/1\.1 200 /);
    expect(upper).toMatch(/\r\nx-request-id: trace-42\r\n/i);
    // Two ids join into "a, b", which is not a sane id: the answer carries a fresh UUID instead.
    const twice = await raw('Content-Type: application/json\r\nX-Request-Id: a\r\nx-request-id: b\r\n');
    expect(twice).toMatch(/^HTTP\/1\.1 200 /);
    expect(twice).toMatch(
      /\r\nx-request-id: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\r\n/i,
    );
    // Two content types join into one that is not JSON: 415.
    const types = await raw('Content-Type: application/json\r\nContent-Type: text/plain\r\n');
    expect(types).toMatch(/^HTTP\/1\.1 415 /);
  });

  it('closes the connection of every answer written while closeConnection says so, faults included', async () => {
    let closing = false;
    let mode: 'answer' | 'reject' | 'throw' | 'wait' = 'answer';
    const entered = deferred();
    const release = deferred();
    const listener = nodeListener(
      {
        fetch: (req, env) => {
          if (mode === 'reject') return Promise.reject(new Error('boom'));
          if (mode === 'throw') throw new Error('boom');
          if (mode === 'wait') {
            entered.resolve();
            return release.promise.then(() => app.fetch(req, env as object | undefined));
          }
          return app.fetch(req, env as object | undefined);
        },
      },
      { closeConnection: () => closing },
    );
    const server = createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = () =>
      new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
        httpRequest(`${url}/v2/health/live`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
        })
          .on('error', reject)
          .end();
      });
    try {
      expect(await get()).toEqual({ status: 200, connection: 'keep-alive' });
      // Asked as the answer is written, not when the request arrives: it turns true while the request is in flight.
      mode = 'wait';
      const pending = get();
      await entered.promise;
      closing = true;
      release.resolve();
      expect(await pending).toEqual({ status: 200, connection: 'close' });
      mode = 'reject'; // a fault answered by the adapter itself
      expect(await get()).toEqual({ status: 500, connection: 'close' });
      mode = 'throw'; // a fetch that throws before returning a promise
      expect(await get()).toEqual({ status: 500, connection: 'close' });
      closing = false;
      expect(await get()).toEqual({ status: 500, connection: 'keep-alive' });
      mode = 'reject';
      expect(await get()).toEqual({ status: 500, connection: 'keep-alive' });
    } finally {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('answers 500 when the app throws past its own error handling, and serves on', async () => {
    const broken = await startServer({
      app: {
        fetch: () => {
          throw new Error('boom');
        },
      },
      port: 0,
      handleSignals: false,
    });
    try {
      const first = await fetch(`${broken.url}/v2/health/live`);
      expect(first.status).toBe(500);
      expect(await first.json()).toEqual({ error: 'internal server error' });
      expect((await fetch(`${broken.url}/v2/health/live`)).status).toBe(500);
    } finally {
      await broken.shutdown();
    }
  });
});

describe('the fetch channel (edge runtimes, app.request)', () => {
  it('answers a fetch Request with a fetch Response carrying the same answer', async () => {
    const res = await app.request(INFER, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'edge-1' },
      body: JSON.stringify(INFER_REQUEST),
    });
    expect(res).toBeInstanceOf(Response);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('edge-1');
    const body = (await res.json()) as { outputs: { data: number[] }[] };
    for (const [i, v] of EXPECTED.entries()) expect(body.outputs[0]?.data[i]).toBeCloseTo(v, 5);
  });
});

describe("an answer over Lambda's response limit", () => {
  let big: { dir: string; cleanup: () => Promise<void> };
  let identity: LoadedModel;
  beforeAll(async () => {
    big = await tempDir('maap-answer-limit-');
    const pkg = await packFixture(big.dir, identityModel('FP32', ['n']), { name: 'echo', version: '1.0.0' });
    identity = await loadModel(pkg.path, { intraOpThreads: 1 });
  });
  afterAll(async () => {
    await identity?.close();
    await big?.cleanup();
  });

  it('is measured as the result carries it: a JSON string, quotes, backslashes and control characters escaped', () => {
    const { size } = lambdaAnswerLimit(LAMBDA_RESPONSE_BYTES);
    expect(size('{"a":1}')).toBe(7); // short: fits however it is escaped
    const long = `${'"\\\u0001é'.repeat(300_000)}`;
    expect(size(long)).toBe(Buffer.byteLength(JSON.stringify(long)) - 2);
    expect(size(long)).toBe(300_000 * (2 + 2 + 6 + 2));
  });

  it('is a 413 that says why, logged as a 413, instead of a result Lambda would refuse (a 502 for the caller)', async () => {
    const lines: Record<string, unknown>[] = [];
    const limited = createApp({
      models: new ModelSlot({ model: identity }),
      logger: createRequestLog({ sink: (line) => lines.push(JSON.parse(line)) }),
      metrics: createRequestMetrics({ sink: () => {} }),
    });
    // 0.1 as FP32 comes back as 0.10000000149011612: 390,000 of them are ~7.8 MB of answer from a 1.6 MB request.
    const n = 390_000;
    const body = { inputs: [{ name: 'x', datatype: 'FP32', shape: [n], data: new Array(n).fill(0.1) }] };
    const event = lambdaEvent('function-url', { method: 'POST', path: '/v2/models/echo/infer', body });
    const result = (await handleLambdaEvent(limited, event)) as Result;
    expect(result.statusCode).toBe(413);
    expect(bodyOf(result).error).toMatch(
      /^the answer would be 7\.\d MiB \(\d+ bytes\), over the 6\.0 MiB this function can return: send fewer rows per request, or ask for fewer outputs$/,
    );
    expect(Buffer.byteLength(JSON.stringify(result))).toBeLessThan(LAMBDA_RESPONSE_BYTES);
    expect(lines.at(-1)).toMatchObject({ status: 413, error_message: bodyOf(result).error });
    // Behind a load balancer (an ALB takes 1 MB of response JSON), 1.5 MB of answer is too much already.
    const albBody = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [75_000], data: new Array(75_000).fill(0.1) }],
    };
    const alb = lambdaEvent('rest-api-v1', { method: 'POST', path: '/v2/models/echo/infer', body: albBody });
    delete alb.multiValueHeaders;
    alb.requestContext = {
      elb: { targetGroupArn: 'arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/m/1' },
    };
    const albResult = (await handleLambdaEvent(limited, alb)) as Result;
    expect(albResult.statusCode).toBe(413);
    expect(bodyOf(albResult).error).toMatch(
      /^the answer would be 1\.4 MiB \(\d+ bytes\), over the 1\.0 MiB /,
    );
    expect(lines.at(-1)).toMatchObject({ status: 413 });
    // The same answer fits through a Function URL.
    const url = lambdaEvent('function-url', { method: 'POST', path: '/v2/models/echo/infer', body: albBody });
    expect(((await handleLambdaEvent(limited, url)) as Result).statusCode).toBe(200);
    // Under the limit, the same app answers.
    const small = lambdaEvent('function-url', {
      method: 'POST',
      path: '/v2/models/echo/infer',
      body: { inputs: [{ name: 'x', datatype: 'FP32', shape: [3], data: [1, 2, 3] }] },
    });
    expect(((await handleLambdaEvent(limited, small)) as Result).statusCode).toBe(200);
  });
});
