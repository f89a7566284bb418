/**
 * Graceful shutdown of the Node server and hot swaps of the model: in-flight requests finish, new connections
 * are refused, a request stuck past the timeout is cut off, signals shut down and exit.
 */
import { request as httpRequest } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import * as ort from 'onnxruntime-node';
import { describe, expect, it, vi } from 'vitest';
import type { LoadedModel } from '../../lib/inference/model.ts';
import { loadModel } from '../../lib/inference/model.ts';
import { mlpModel, mlpReference } from '../fixtures/models.ts';
import { call, deferred, gateSession, infer, serveFixture } from './harness.ts';

const X = [1, 2, 3, 4];
const body = { id: 'slow', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: X }] };

/** A direct run on the model's session (bypassing the model), to see whether the session was released. */
const rawRun = (model: LoadedModel | undefined) =>
  (model as LoadedModel).session.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4]) });

/** A raw request on its own connection (no keep-alive pool): resolves with status, headers and body. */
function post(url: string, path: string, payload: unknown) {
  return new Promise<{ status: number; connection: string | undefined; body: unknown }>((resolve, reject) => {
    const req = httpRequest(url + path, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: JSON.parse(text) }),
      );
    });
    req.on('error', reject);
    req.end(JSON.stringify(payload));
  });
}

/** Opens a fresh connection: resolves with the error code, or 'connected'. */
function connect(url: string) {
  return new Promise<string>((resolve) => {
    const req = httpRequest(`${url}/v2/health/live`, { agent: false });
    req.on('response', (res) => {
      res.resume();
      resolve('connected');
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

/** A server in front of an app that answers every request with `{}`. */
async function trivialServer(shutdownTimeoutMs?: number) {
  const { startServer } = await import('../../runtime/server.ts');
  return startServer({
    app: { fetch: () => new Response('{}', { headers: { 'content-type': 'application/json' } }) },
    port: 0,
    handleSignals: false,
    ...(shutdownTimeoutMs === undefined ? {} : { shutdownTimeoutMs }),
  });
}

describe('graceful shutdown', () => {
  it('lets an in-flight request finish, refuses new connections, then runs onShutdown', async () => {
    const gate = deferred();
    const entered = deferred();
    let inner: LoadedModel | undefined;
    const served = await serveFixture(mlpModel(), {
      pack: { name: 'mlp' },
      wrap: (model) => {
        inner = model;
        return gateSession(model, gate.promise, entered.resolve);
      },
    });
    const slow = post(served.url, '/v2/models/mlp/infer', body);
    await entered.promise; // the request is inside the model run

    const stopped = served.running.shutdown();
    expect(await connect(served.url)).toBe('ECONNREFUSED');

    gate.resolve();
    const answer = await slow;
    expect(answer.status).toBe(200);
    expect(answer.connection).toBe('close');
    expect(answer.body).toMatchObject({
      model_name: 'mlp',
      id: 'slow',
      outputs: [{ name: 'y', shape: [1, 2] }],
    });
    const y = (answer.body as { outputs: { data: number[] }[] }).outputs[0]?.data ?? [];
    for (const [i, v] of mlpReference(X).entries()) expect(y[i]).toBeCloseTo(v, 5);

    await stopped;
    expect(served.slot.state()).toEqual({ ready: false, reason: 'the predictor is shutting down' });
    // onShutdown closed the model: its session is released.
    await expect(rawRun(inner)).rejects.toThrow(/disposed/);
    await served.close();
  });

  it('does not run a request pipelined behind the in-flight one: that answer ends the connection', async () => {
    const gate = deferred();
    const entered = deferred();
    let runs = 0;
    const served = await serveFixture(mlpModel(), {
      pack: { name: 'mlp' },
      wrap: (model) =>
        gateSession(model, gate.promise, () => {
          runs++;
          entered.resolve();
        }),
    });
    const payload = JSON.stringify(body);
    const one = (id: string) =>
      `POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(payload.replace('slow', id))}\r\n\r\n${payload.replace('slow', id)}`;
    const { port } = new URL(served.url);
    const answered = new Promise<string>((resolve, reject) => {
      const socket = netConnect(Number(port), '127.0.0.1', () => socket.write(one('first') + one('second')));
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (text += d));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    await entered.promise; // the first is inside the model run, the second queued behind it
    const stopped = served.running.shutdown();
    gate.resolve();
    const text = await answered;
    await stopped;
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(text).toMatch(/\r\nconnection: close\r\n/i);
    expect(text).toContain('"id":"first"');
    expect(runs).toBe(1); // the second never ran
    await served.close();
  });

  it('closes a connection that has sent nothing at once, instead of waiting for the timeout', async () => {
    const running = await trivialServer(600_000); // waiting for the timeout would fail the test by its own
    const socket = netConnect(running.port, '127.0.0.1');
    const closed = new Promise<void>((ok) => socket.on('close', () => ok()));
    socket.on('error', () => {});
    await new Promise<void>((ok) => socket.on('connect', () => ok()));
    await new Promise((wait) => setTimeout(wait, 20)); // the server has taken the connection
    try {
      await running.shutdown();
      await closed;
    } finally {
      running.server.closeAllConnections();
    }
  });

  it('answers a request that arrives on an unused connection as shutdown starts, instead of resetting it', async () => {
    const running = await trivialServer();
    try {
      const socket = netConnect(running.port, '127.0.0.1');
      await new Promise<void>((ok) => socket.on('connect', () => ok()));
      await new Promise((wait) => setTimeout(wait, 20)); // an idle pre-opened connection
      let text = '';
      const closed = new Promise<string>((ok) => {
        socket.on('data', (d) => (text += d));
        socket.on('error', (err: NodeJS.ErrnoException) => (text += `<${err.code}>`));
        socket.on('close', () => ok(text));
      });
      // In the kernel's buffer, not yet read by Node, when shutdown starts in the same turn.
      socket.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n');
      await running.shutdown();
      expect((await closed).split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    } finally {
      running.server.closeAllConnections();
    }
  });

  it('cuts off a request still running when the timeout expires', async () => {
    const never = deferred();
    const entered = deferred();
    const served = await serveFixture(mlpModel(), {
      pack: { name: 'mlp' },
      wrap: (model) => gateSession(model, never.promise, entered.resolve),
    });
    // A server with a short shutdown timeout in front of the same app.
    const { startServer } = await import('../../runtime/server.ts');
    const { createApp } = await import('../../lib/serving/app.ts');
    const quiet = { logRequest() {}, recordRequest() {}, flush() {} };
    const short = await startServer({
      app: createApp({ models: served.slot, logger: quiet, metrics: quiet }),
      port: 0,
      handleSignals: false,
      shutdownTimeoutMs: 50,
    });
    const stuck = post(short.url, '/v2/models/mlp/infer', body);
    await entered.promise;
    await short.shutdown();
    await expect(stuck).rejects.toThrow(/socket hang up|ECONNRESET/);
    never.resolve();
    await served.close();
  });

  it('shuts down and exits 0 on SIGTERM', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    const { startServer } = await import('../../runtime/server.ts');
    const { createApp } = await import('../../lib/serving/app.ts');
    const quiet = { logRequest() {}, recordRequest() {}, flush() {} };
    const exited = deferred<number>();
    const shutdownRan = deferred();
    const listeners = process.listenerCount('SIGTERM');
    const intListeners = process.listenerCount('SIGINT');
    const running = await startServer({
      app: createApp({ models: served.slot, logger: quiet, metrics: quiet }),
      port: 0,
      exit: exited.resolve,
      onShutdown: shutdownRan.resolve,
    });
    expect(process.listenerCount('SIGTERM')).toBe(listeners + 1);
    expect((await call(running.url, 'GET', '/v2/health/live')).status).toBe(200);
    process.emit('SIGTERM', 'SIGTERM');
    expect(await exited.promise).toBe(0);
    await shutdownRan.promise;
    expect(await connect(running.url)).toBe('ECONNREFUSED');
    expect(process.listenerCount('SIGTERM')).toBe(listeners);
    expect(process.listenerCount('SIGINT')).toBe(intListeners);
    await served.close();
  });
});

describe('the end of a shutdown', () => {
  it('writes out the telemetry before onShutdown, and ends after one more timeout if onShutdown hangs', async () => {
    const { startServer } = await import('../../runtime/server.ts');
    const order: string[] = [];
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const running = await startServer({
        app: {
          fetch: () => new Response('{}', { headers: { 'content-type': 'application/json' } }),
          flushTelemetry: () => {
            order.push('flush');
          },
        },
        port: 0,
        handleSignals: false,
        shutdownTimeoutMs: 50,
        onShutdown: () => {
          order.push('onShutdown');
          return new Promise<void>(() => {}); // a model run that never ends
        },
      });
      await running.shutdown();
      expect(order).toEqual(['flush', 'onShutdown', 'flush']);
      expect(stderr).toHaveBeenCalledWith(
        'maap: shutdown: onShutdown did not finish within 50 ms; ending without it\n',
      );
    } finally {
      stderr.mockRestore();
    }
  });
});

describe('what Node answers itself (requests it cannot take to the app)', () => {
  /** Sends `raw` on a fresh connection; resolves with everything the server wrote before closing. */
  function rawExchange(url: string, raw: string): Promise<string> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = netConnect(Number(port), hostname, () => socket.write(raw));
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (text += d));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
  }
  const json = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: string };

  /** The request id an answer carries. */
  const idOf = (text: string) => /\r\nx-request-id: ([^\r]*)\r\n/i.exec(text)?.[1];

  it.each([
    [
      'a malformed chunk size',
      'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      400,
      /^the request is not valid HTTP\/1\.1 \(HPE_INVALID_CHUNK_SIZE: /,
      'infer',
    ],
    [
      'two different Content-Lengths',
      'POST /v2/models/mlp/infer?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
      400,
      /^the request is not valid HTTP\/1\.1 \(HPE_UNEXPECTED_CONTENT_LENGTH: /,
      'infer',
    ],
    [
      'headers over the size limit',
      `GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      /^the request's headers are larger than \d+ bytes$/,
      'health',
    ],
    [
      'an Expect other than 100-continue',
      'GET /v2/health/live HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n',
      417,
      /^Expect: teapot is not supported \(only 100-continue is\)$/,
      'health',
    ],
  ])(
    'answers %s with JSON and a request id, logs it, then serves on',
    async (_what, raw, status, message, operation) => {
      const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
      try {
        const text = await rawExchange(served.url, raw);
        expect(text.split('\r\n')[0]).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
        expect(text).toMatch(/\r\ncontent-type: application\/json\r\n/i);
        expect(text).toMatch(/\r\nx-request-id: [0-9a-f-]{36}\r\n/i);
        expect(json(text).error).toMatch(message);
        expect((await call(served.url, 'GET', '/v2/health/live')).status).toBe(200);
        await served.flushTelemetry();
        const line = served.logs.find((l) => l.request_id === idOf(text));
        const [method, target] = raw.split(' ') as [string, string];
        // Node hands over the bytes it was parsing when it gave up: the request line, unless the request came in pieces.
        if (line?.method !== '-' || status !== 431) {
          expect(line).toMatchObject({ method, path: target.split('?')[0], operation });
        }
        expect(line).toMatchObject({ level: 'INFO', status, error_message: json(text).error, latency_ms: 0 });
        const counted = served.emf.flatMap((d) =>
          Array.isArray(d.ClientErrors) ? d.ClientErrors : [d.ClientErrors],
        );
        expect(counted.filter((v) => v !== undefined)).toEqual(operation === 'infer' ? [1] : []);
      } finally {
        await served.close();
      }
    },
  );

  /** Sends `raw`, ends the sending side (as `nc -N` does), and resolves with what the server wrote back. */
  function halfClosed(url: string, raw: string): Promise<string> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = netConnect(Number(port), hostname, () => socket.end(raw));
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (text += d));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
  }

  it('answers and logs a request whose client ended the connection in the middle of its head', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    try {
      const text = await halfClosed(served.url, 'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n');
      expect(text).toMatch(/^HTTP\/1\.1 400 /);
      const message = 'the request was cut off: the client ended the connection before all of it arrived';
      expect(json(text).error).toBe(message);
      await served.flushTelemetry();
      expect(served.logs.filter((l) => l.request_id === idOf(text))).toMatchObject([
        { status: 400, error_message: message },
      ]);
    } finally {
      await served.close();
    }
  });

  it('leaves a request whose client ended the connection in the middle of its body to the app, logged once', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    try {
      await served.flushTelemetry();
      const before = served.logs.length;
      await halfClosed(
        served.url,
        'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\nX-Request-Id: half-1\r\n\r\n{"inputs":',
      );
      const logged = async () => {
        await served.flushTelemetry();
        return served.logs.length;
      };
      await expect.poll(logged).toBe(before + 1);
      expect(served.logs.slice(before)).toMatchObject([
        {
          request_id: 'half-1',
          status: 499,
          path: '/v2/models/mlp/infer',
          error_message: 'the request body was cut off: the client closed the connection',
        },
      ]);
      expect((await call(served.url, 'GET', '/v2/health/live')).status).toBe(200);
    } finally {
      await served.close();
    }
  });

  it('logs a request Node cannot read a request line from without a method or path', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    try {
      // A TLS ClientHello on the plain HTTP port: a client configured with https:// by mistake.
      const text = await rawExchange(served.url, '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03');
      expect(text).toMatch(/^HTTP\/1\.1 400 /);
      await served.flushTelemetry();
      expect(served.logs.find((l) => l.request_id === idOf(text))).toMatchObject({
        status: 400,
        method: '-',
        path: '-',
        operation: 'other',
        error_message: expect.stringMatching(/^the request is not valid HTTP\/1\.1 \(HPE_INVALID_METHOD: /),
      });
    } finally {
      await served.close();
    }
  });
});

describe('requestLine', () => {
  it('reads the method and target of the request line a packet starts with', async () => {
    const { requestLine } = await import('../../runtime/server.ts');
    expect(requestLine(Buffer.from('PUT /v2/models/m/infer?a=b HTTP/1.1\r\nHost: x\r\n'))).toEqual({
      method: 'PUT',
      target: '/v2/models/m/infer?a=b',
    });
    expect(requestLine(Buffer.from('GET http://h/v2 HTTP/1.0\n'))).toEqual({
      method: 'GET',
      target: 'http://h/v2',
    });
  });

  it('reads the request Node gave up on, not a whole one before it in the same packet', async () => {
    const { requestLine } = await import('../../runtime/server.ts');
    const before = 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n';
    const bad = 'GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n';
    const errorAt = before.length + bad.indexOf('Bad Header');
    expect(requestLine(Buffer.from(before + bad), errorAt)).toEqual({
      method: 'GET',
      target: '/v2/health/ready',
    });
    // A refused request whose own line is not one: none, rather than the whole request before it.
    expect(requestLine(Buffer.from(`${before}BAD\r\n\r\n`), before.length)).toEqual({});
  });

  it.each([
    ['no packet', undefined],
    ['the middle of a request', Buffer.from('aaaa\r\nHost: x\r\n\r\n')],
    ['a line without its end', Buffer.from('GET /v2/health/live HTTP/1.1')],
    ['a control character in the target', Buffer.from('GET /v2/\x01 HTTP/1.1\r\n')],
    ['HTTP/2', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
    ['TLS', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])],
  ])('finds none in %s', async (_what, packet) => {
    const { requestLine } = await import('../../runtime/server.ts');
    expect(requestLine(packet)).toEqual({});
  });
});

describe('Expect: 100-continue', () => {
  it('is answered 413 at once when the declared body is over the limit, 100 Continue otherwise', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    const { startServer } = await import('../../runtime/server.ts');
    const { createApp } = await import('../../lib/serving/app.ts');
    const quiet = { logRequest() {}, recordRequest() {}, flush() {} };
    const running = await startServer({
      app: createApp({ models: served.slot, logger: quiet, metrics: quiet, bodyLimit: 1000 }),
      port: 0,
      handleSignals: false,
      bodyLimit: 1000,
    });
    const head = (length: number) =>
      `POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`;
    const exchange = (length: number, body?: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = netConnect(running.port, '127.0.0.1', () => socket.write(head(length)));
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => {
          text += d;
          if (
            body !== undefined &&
            text.startsWith('HTTP/1.1 100 Continue\r\n\r\n') &&
            !text.includes('200')
          ) {
            socket.write(body);
          }
          if (/\r\n\r\n\{.*\}$/s.test(text)) socket.end();
        });
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
    try {
      const refused = await exchange(5000); // the body is never sent: the answer must not wait for it
      expect(refused).toMatch(/^HTTP\/1\.1 413 /);
      expect(refused).not.toMatch(/100 Continue/);
      expect(refused).toMatch(/\r\nx-request-id: [0-9a-f-]{36}\r\n/i);
      expect(refused).toMatch(/"error":"the request body is larger than the limit of 1000 bytes"/);
      const payload = JSON.stringify(body);
      const accepted = await exchange(Buffer.byteLength(payload), payload);
      expect(accepted).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    } finally {
      await running.shutdown();
      await served.close();
    }
  });
});

describe('Expect: 100-continue over the limit', () => {
  it("is logged with the caller's request id and counted as a client error of the model", async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' }, bodyLimit: 1000 });
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const socket = netConnect(Number(new URL(served.url).port), '127.0.0.1', () =>
          socket.write(
            'POST /v2/models/mlp/versions/1.0.0/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
              'Content-Length: 5000\r\nX-Request-Id: big-batch-7\r\nExpect: 100-continue\r\n\r\n',
          ),
        );
        let got = '';
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => (got += d));
        socket.on('close', () => resolve(got));
        socket.on('error', reject);
      });
      expect(text).toMatch(/^HTTP\/1\.1 413 /);
      expect(text).toMatch(/\r\nx-request-id: big-batch-7\r\n/i);
      await served.flushTelemetry();
      expect(served.logs.find((l) => l.request_id === 'big-batch-7')).toMatchObject({
        status: 413,
        method: 'POST',
        path: '/v2/models/mlp/versions/1.0.0/infer',
        operation: 'infer',
        model: 'mlp',
        model_version: '1.0.0',
        error_message: 'the request body is larger than the limit of 1000 bytes',
      });
      const doc = served.emf.find((d) => d.request_id === 'big-batch-7' || d.ClientErrors !== undefined);
      expect(doc).toMatchObject({ model: 'mlp', version: '1.0.0', ClientErrors: 1, Requests: 1 });
      // Not timed by anyone: no Latency value (a 0 would drag the percentiles down).
      expect(doc).not.toHaveProperty('Latency');
    } finally {
      await served.close();
    }
  });
});

/** A server whose model runs wait for `gate`, saying when one has started (`entered`). */
async function gatedServer() {
  const gate = deferred();
  const entered = deferred();
  const served = await serveFixture(mlpModel(), {
    pack: { name: 'mlp' },
    wrap: (model) => gateSession(model, gate.promise, entered.resolve),
  });
  return { served, gate, entered };
}

describe('a client that leaves before its answer', () => {
  it('is logged with status 499 and the status it would have had, and counted as a client error', async () => {
    const { served, gate, entered } = await gatedServer();
    try {
      const payload = JSON.stringify(body);
      const socket = netConnect(Number(new URL(served.url).port), '127.0.0.1', () =>
        socket.write(
          `POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-Id: gone-1\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`,
        ),
      );
      await entered.promise; // the model is running: the client gives up (a timeout of its own)
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.destroy();
      await closed;
      // The server has seen the connection go: then the model run ends.
      const open = () =>
        new Promise<number>((resolve, reject) =>
          served.running.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
        );
      await expect.poll(open).toBe(0);
      gate.resolve();
      const logged = async () => {
        await served.flushTelemetry();
        return served.logs.find((l) => l.request_id === 'gone-1');
      };
      await expect.poll(logged).toMatchObject({
        status: 499,
        operation: 'infer',
        model: 'mlp',
        batch_size: 1,
        error_message: 'the client closed the connection before the answer (200) was written',
      });
      expect(served.emf.find((d) => d.ClientErrors !== undefined)).toMatchObject({
        ClientErrors: 1,
        Requests: 1,
      });
      expect((await call(served.url, 'GET', '/v2/health/live')).status).toBe(200);
    } finally {
      gate.resolve();
      await served.close();
    }
  });
});

describe('one log line per request, whoever ends its connection (review findings)', () => {
  /** An open connection that collects what the server writes. */
  async function connection(url: string, allowHalfOpen = false) {
    const socket = netConnect({ port: Number(new URL(url).port), host: '127.0.0.1', allowHalfOpen });
    const state = { socket, text: '', closed: new Promise((resolve) => socket.once('close', resolve)) };
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (state.text += d));
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    return state;
  }
  const infer = (id: string) => {
    const payload = JSON.stringify(body);
    return `POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${id}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`;
  };
  const lines = async (served: Awaited<ReturnType<typeof serveFixture>>, id: string) => {
    await served.flushTelemetry();
    return served.logs.filter((l) => l.request_id === id);
  };

  it('a request refused while the app answers it without reading its body is logged once, as refused', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    try {
      const c = await connection(served.url);
      c.socket.write(
        'GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Request-Id: r2\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      );
      await c.closed;
      expect(c.text).toMatch(/^HTTP\/1\.1 400 /);
      expect(await lines(served, 'r2')).toMatchObject([
        {
          status: 400,
          method: 'GET',
          path: '/v2/health/live',
          error_message: expect.stringMatching(/HPE_INVALID_CHUNK_SIZE/),
        },
      ]);
    } finally {
      await served.close();
    }
  });

  it.each([
    [
      'a malformed head',
      'GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\nX-Request-Id: B1\r\n\r\n',
    ],
    [
      'a malformed body',
      'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nX-Request-Id: B1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    ],
  ])(
    'a request with %s pipelined behind one in flight waits for its answer, then the connection ends',
    async (_what, malformed) => {
      const { served, gate, entered } = await gatedServer();
      try {
        const c = await connection(served.url);
        c.socket.write(infer('A1'));
        await entered.promise;
        c.socket.write(malformed);
        await new Promise((resolve) => setTimeout(resolve, 50)); // B1 is read while A1 is in flight
        gate.resolve();
        await c.closed;
        // The only answer is A1's own (answering B1 first would have put B1's 400 in A1's place).
        expect(c.text.match(/^HTTP\/1\.1 /gm)).toHaveLength(1);
        expect(c.text).toMatch(/^HTTP\/1\.1 200 /);
        expect(c.text).toMatch(/\r\nx-request-id: A1\r\n/i);
        // B1 is never answered, so never logged (the app, which has a malformed body's head, leaves it out too).
        await new Promise((resolve) => setTimeout(resolve, 50));
        await served.flushTelemetry();
        expect(served.logs.map((l) => [l.request_id, l.status])).toEqual([['A1', 200]]);
      } finally {
        gate.resolve();
        await served.close();
      }
    },
  );

  it('a request timeout of a malformed request pipelined behind a long inference does not cut its answer', async () => {
    const { served, gate, entered } = await gatedServer();
    let serverSide: Socket | undefined;
    served.running.server.once('connection', (socket: Socket) => {
      serverSide = socket;
    });
    try {
      const c = await connection(served.url);
      c.socket.write(infer('A1'));
      await entered.promise;
      c.socket.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Node's timeouts run for the malformed request: after headersTimeout (66 s), while A1's inference still runs,
      // Node reports it as Node's connection check does.
      const timeout = Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
      served.running.server.emit('clientError', timeout, serverSide);
      gate.resolve();
      await c.closed;
      expect(c.text).toMatch(/^HTTP\/1\.1 200 /);
      expect(c.text).toMatch(/\r\nx-request-id: A1\r\n/i);
    } finally {
      gate.resolve();
      await served.close();
    }
  });

  it('whole requests queued between the one in flight and a malformed one are answered and logged; the malformed one is not', async () => {
    const { served, gate, entered } = await gatedServer();
    try {
      const c = await connection(served.url);
      c.socket.write(infer('A1'));
      await entered.promise;
      c.socket.write(infer('B1')); // whole, waiting for its turn
      c.socket.write('GET /v2/health/live HTTP/1.1\r\nHo st: y\r\nX-Request-Id: C1\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, 50)); // C1 is read while A1 is in flight
      gate.resolve();
      await c.closed;
      expect([...c.text.matchAll(/\r\nx-request-id: ([^\r]*)\r\n/gi)].map((m) => m[1])).toEqual(['A1', 'B1']);
      await served.flushTelemetry();
      expect(served.logs.map((l) => [l.request_id, l.status])).toEqual([
        ['A1', 200],
        ['B1', 200],
      ]);
    } finally {
      gate.resolve();
      await served.close();
    }
  });

  it('cuts a connection it ended after a refusal when the client never closes its side', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    const c = await connection(served.url, true);
    try {
      c.socket.write('BAD\r\n\r\n');
      await expect.poll(() => c.text).toMatch(/^HTTP\/1\.1 400 /);
      expect(c.text).toMatch(/"error":"the request is not valid HTTP\/1\.1/);
      // The client keeps its side open (allowHalfOpen). Node's shutdown does not see a connection whose request it
      // could not parse: without the cut (2 s after the answer), this one would hold a shutdown for its whole timeout.
      const open = () =>
        new Promise<number>((resolve, reject) =>
          served.running.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
        );
      await expect.poll(open, { timeout: 10_000, interval: 200 }).toBe(0);
      expect(c.socket.destroyed).toBe(false); // the client did not close it
    } finally {
      c.socket.destroy();
      await served.close();
    }
  });

  it('stops reading requests without Host pipelined behind a slow one, as it does any others', async () => {
    const { served, gate, entered } = await gatedServer();
    let seen = 0;
    const count = () => seen++;
    served.running.server.on('request', count);
    try {
      const c = await connection(served.url);
      c.socket.write(infer('A1'));
      await entered.promise;
      // 20,000 pipelined requests (680 KB): each refusal is written into its waiting answer at once, and those bytes
      // make Node stop reading (had they waited for their turn, Node would have read them all, in memory).
      c.socket.write('GET /v2/health/live HTTP/1.1\r\n\r\n'.repeat(20_000));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(seen).toBeGreaterThan(1);
      expect(seen).toBeLessThan(10_000);
      c.socket.destroy();
    } finally {
      served.running.server.off('request', count);
      gate.resolve();
      await served.close();
    }
  });

  it.each([
    [
      'a 404, then the rest of the body breaks',
      'POST /v2/models/nope/infer HTTP/1.1\r\nHost: x\r\nX-Request-Id: E1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n',
      (socket: Socket) => socket.write('zz\r\n'),
      404,
    ],
    [
      'a 413 on the declared length, then the client gives up',
      'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nX-Request-Id: E1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"a":1',
      (socket: Socket) => socket.end(),
      413,
    ],
  ])(
    'an answer given before the body arrived (%s) is the only one, logged once',
    async (_what, head, then, status) => {
      const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' }, bodyLimit: 1000 });
      try {
        const c = await connection(served.url);
        c.socket.write(head);
        await expect.poll(() => c.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
        then(c.socket);
        await c.closed;
        expect(c.text.match(/^HTTP\/1\.1 /gm)).toHaveLength(1);
        await new Promise((resolve) => setTimeout(resolve, 50));
        await served.flushTelemetry();
        expect(served.logs.map((l) => [l.request_id, l.status])).toEqual([['E1', status]]);
      } finally {
        await served.close();
      }
    },
  );

  it('lets a large answer being written finish before it ends the connection for a malformed request behind it', async () => {
    const { startServer } = await import('../../runtime/server.ts');
    const { PlainResponse } = await import('../../lib/serving/exchange.ts');
    const size = 16 * 1024 * 1024;
    const running = await startServer({
      app: {
        fetch: () => new PlainResponse(200, { 'content-type': 'text/plain' }, 'x'.repeat(size)).asResponse(),
      },
      port: 0,
      handleSignals: false,
    });
    try {
      const c = await connection(running.url);
      c.socket.pause(); // a slow reader: the answer is still being written when the next request arrives
      c.socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, 200));
      c.socket.write('BAD\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, 200));
      c.socket.resume();
      await c.closed;
      expect(c.text.length - c.text.indexOf('\r\n\r\n') - 4).toBe(size);
    } finally {
      await running.shutdown();
    }
  });

  it('a request without Host pipelined behind one answered during a shutdown is never answered, nor logged', async () => {
    const { served, gate, entered } = await gatedServer();
    try {
      const c = await connection(served.url);
      c.socket.write(infer('A6'));
      await entered.promise;
      c.socket.write('GET /v2/health/live HTTP/1.1\r\nX-Request-Id: NH6\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, 50)); // NH6 is read, refused, and waits for its turn
      const stopped = served.running.shutdown(); // A6's answer will end the connection: NH6's turn never comes
      gate.resolve();
      await c.closed;
      await stopped;
      expect(c.text.match(/^HTTP\/1\.1 /gm)).toHaveLength(1);
      expect(c.text).toMatch(/^HTTP\/1\.1 200 /);
      await served.flushTelemetry();
      expect(served.logs.map((l) => [l.request_id, l.status])).toEqual([['A6', 200]]);
    } finally {
      gate.resolve();
      await served.close();
    }
  });

  it('a 413 waiting during a shutdown for the rest of its body to be dropped is logged once, whatever that rest is', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' }, bodyLimit: 1000 });
    const c = await connection(served.url);
    try {
      c.socket.write(
        'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nX-Request-Id: D1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
      );
      c.socket.write(`1f4\r\n${'a'.repeat(500)}\r\n`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const stopped = served.running.shutdown(); // from now on, answers end their connection: the 413 waits
      c.socket.write(`3e8\r\n${'a'.repeat(1000)}\r\n`); // over the limit: the app answers 413
      await new Promise((resolve) => setTimeout(resolve, 50));
      c.socket.write('zz\r\n'); // then a malformed chunk size in what is being dropped
      await stopped;
      await served.flushTelemetry();
      expect(served.logs.map((l) => [l.request_id, l.status])).toEqual([['D1', 413]]);
    } finally {
      c.socket.destroy();
      await served.close();
    }
  });

  it('a request cut short by the shutdown timeout is not logged as left by its client', async () => {
    const { served, gate, entered } = await gatedServer();
    const { startServer } = await import('../../runtime/server.ts');
    const logs: Record<string, unknown>[] = [];
    const { createApp } = await import('../../lib/serving/app.ts');
    const { createRequestLog } = await import('../../lib/telemetry/request-log.ts');
    const quiet = { recordRequest() {}, flush() {} };
    const app = createApp({
      models: served.slot,
      logger: createRequestLog({ sink: (line) => logs.push(JSON.parse(line)) }),
      metrics: quiet,
    });
    const running = await startServer({ app, port: 0, handleSignals: false, shutdownTimeoutMs: 50 });
    try {
      const c = await connection(running.url);
      c.socket.write(infer('S1'));
      await entered.promise;
      await running.shutdown(); // cuts the connection after 50 ms
      gate.resolve();
      await expect.poll(() => logs.filter((l) => l.request_id === 'S1')).toMatchObject([{ status: 200 }]);
    } finally {
      gate.resolve();
      await served.close();
    }
  });

  it('a fault after the client left is still logged as a fault, with its stack', async () => {
    const entered = deferred();
    const served = await serveFixture(mlpModel(), {
      pack: { name: 'mlp' },
      wrap: (model) => {
        model.session.run = (async () => {
          entered.resolve();
          await new Promise((resolve) => setTimeout(resolve, 100));
          throw new Error('onnxruntime blew up');
        }) as typeof model.session.run;
        return model;
      },
    });
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const c = await connection(served.url);
      c.socket.write(infer('F1'));
      await entered.promise;
      c.socket.destroy();
      await expect
        .poll(async () => lines(served, 'F1'))
        .toMatchObject([
          { level: 'ERROR', status: 500, error: { message: expect.stringMatching(/blew up/) } },
        ]);
      expect(served.emf.find((d) => d.ServerErrors !== undefined)).toMatchObject({
        ServerErrors: 1,
        ClientErrors: 0,
      });
    } finally {
      stderr.mockRestore();
      await served.close();
    }
  });

  it('answers and logs an HTTP/1.1 request without a Host header with JSON, where Node answers an empty 400', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    try {
      const c = await connection(served.url);
      c.socket.write('GET /v2/health/live HTTP/1.1\r\nX-Request-Id: nohost\r\n\r\n');
      await c.closed;
      expect(c.text).toMatch(/^HTTP\/1\.1 400 /);
      expect(c.text).toMatch(/\r\nx-request-id: nohost\r\n/i);
      const message = 'an HTTP/1.1 request must have a Host header (RFC 9112, section 3.2)';
      expect(c.text).toContain(JSON.stringify({ error: message }));
      expect(await lines(served, 'nohost')).toMatchObject([
        { status: 400, method: 'GET', path: '/v2/health/live', error_message: message },
      ]);
      // HTTP/1.0 needs none.
      const old = await connection(served.url);
      old.socket.write('GET /v2/health/live HTTP/1.0\r\n\r\n');
      await old.closed;
      expect(old.text).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      await served.close();
    }
  });
});

describe('hot swap', () => {
  it('moves new requests to the new model while an in-flight one finishes on the old, then closes the old', async () => {
    const gate = deferred();
    const entered = deferred();
    let oldModel: LoadedModel | undefined;
    const served = await serveFixture(mlpModel(), {
      pack: { name: 'mlp', version: '1.0.0' },
      wrap: (model) => {
        oldModel = model;
        return gateSession(model, gate.promise, entered.resolve);
      },
    });
    const next = await loadModel(served.pkgPath); // same bytes, loaded again: a distinct session
    const slow = post(served.url, '/v2/models/mlp/infer', body);
    await entered.promise;

    const swapped = served.slot.swap(next);
    const fresh = await infer(served.url, body, '/v2/models/mlp/infer');
    expect(fresh.status).toBe(200);
    expect(served.slot.current).toBe(next);

    gate.resolve();
    expect((await slow).status).toBe(200);
    await swapped; // the old model closed after its request finished
    await expect(rawRun(oldModel)).rejects.toThrow(/disposed/);
    await served.close();
    await next.close();
  });

  it('answers 503 with the reason while no model is in service', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    await served.slot.unload('loading mlp@2.0.0 from the registry');
    const ready = await call(served.url, 'GET', '/v2/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({ error: 'loading mlp@2.0.0 from the registry' });
    const answer = await infer(served.url, body, '/v2/models/mlp/infer');
    expect(answer.status).toBe(503);
    expect(answer.body.error).toBe('no model is ready: loading mlp@2.0.0 from the registry');
    expect((await call(served.url, 'GET', '/v2/health/live')).status).toBe(200);
    await served.close();
  });
});
