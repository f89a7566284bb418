/**
 * Test harness for the serving suites: pack a fixture model, load it, serve it on a loopback port through the
 * Node server adapter with telemetry captured in memory, and call it over real HTTP. Every answer is checked for
 * what all answers share (JSON content type, an x-request-id) and validated against the protocol's schemas.
 */
import { expect } from 'vitest';
import { type LoadedModel, type LoadOptions, loadModel } from '../../lib/inference/model.ts';
import type { PackOptions } from '../../lib/package/pack.ts';
import { createApp } from '../../lib/serving/app.ts';
import { ModelSlot } from '../../lib/serving/host.ts';
import { createRequestLog } from '../../lib/telemetry/request-log.ts';
import { createRequestMetrics } from '../../lib/telemetry/request-metrics.ts';
import { type RunningServer, startServer } from '../../runtime/server.ts';
import type { ModelFixture } from '../fixtures/models.ts';
import { assertValidResponse } from '../helpers/openapi.ts';
import { packFixture, tempDir } from '../helpers/packages.ts';

export interface Served {
  readonly url: string;
  readonly model: LoadedModel;
  readonly slot: ModelSlot;
  readonly running: RunningServer;
  readonly pkgPath: string;
  /** Request log lines and EMF documents, parsed, in order. */
  readonly logs: Record<string, unknown>[];
  readonly emf: Record<string, unknown>[];
  /** Publishes the metrics aggregated so far (EMF documents go out once a second otherwise). */
  flushTelemetry(): Promise<void>;
  close(): Promise<void>;
}

export interface ServeOptions {
  readonly pack?: Partial<PackOptions> & { name?: string; version?: string };
  readonly load?: LoadOptions;
  readonly bodyLimit?: number;
  /** Wraps the loaded model before it goes into service (to slow it down, make it fail, ...). */
  readonly wrap?: (model: LoadedModel) => LoadedModel;
}

export async function serveFixture(fixture: ModelFixture, options: ServeOptions = {}): Promise<Served> {
  const { dir, cleanup } = await tempDir('maap-serve-');
  const pkg = await packFixture(dir, fixture, { name: 'model', version: '1.0.0', ...options.pack });
  const loaded = await loadModel(pkg.path, { intraOpThreads: 1, ...options.load });
  const model = options.wrap ? options.wrap(loaded) : loaded;
  const slot = new ModelSlot({ model });
  const logs: Record<string, unknown>[] = [];
  const emf: Record<string, unknown>[] = [];
  const app = createApp({
    models: slot,
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
    logger: createRequestLog({ sink: (line) => logs.push(JSON.parse(line)) }),
    metrics: createRequestMetrics({ sink: (line) => emf.push(JSON.parse(line)) }),
  });
  const running = await startServer({
    app,
    port: 0,
    handleSignals: false,
    onShutdown: () => slot.close(),
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
  });
  return {
    url: running.url,
    model,
    slot,
    running,
    pkgPath: pkg.path,
    logs,
    emf,
    flushTelemetry: () => app.flushTelemetry(),
    async close() {
      await running.shutdown();
      await loaded.close();
      await cleanup();
    },
  };
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: test answers are inspected freely
  readonly body: any;
}

export interface CallOptions {
  /** A string is sent as is; anything else as JSON. */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** One HTTP request; asserts the shared answer properties and the protocol schema of the body. */
export async function call(
  url: string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<Answer> {
  const body =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? options.body
        : JSON.stringify(options.body);
  const headers = {
    ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...options.headers,
  };
  const response = await fetch(url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await response.text();
  expect(response.headers.get('content-type'), `${method} ${path}`).toBe('application/json');
  expect(response.headers.get('x-request-id'), `${method} ${path}`).toMatch(/^[\w.:@=+/-]{1,128}$/);
  if (method === 'HEAD') return { status: response.status, headers: response.headers, body: undefined };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${method} ${path} → ${response.status}: body is not JSON: ${text.slice(0, 200)}`);
  }
  assertValidResponse(method, path, response.status, parsed);
  return { status: response.status, headers: response.headers, body: parsed };
}

/** POST an inference request. */
export function infer(
  url: string,
  body: unknown,
  path = '/v2/models/model/infer',
  headers?: Record<string, string>,
) {
  return call(url, 'POST', path, { body, ...(headers ? { headers } : {}) });
}

/** A deferred promise: resolve it from outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Makes a model's session wait for `gate` before each run, signalling `entered` when a run starts waiting. The
 * session is patched (not the model), so the model's own in-flight accounting sees the waiting run.
 */
export function gateSession(model: LoadedModel, gate: Promise<void>, entered: () => void): LoadedModel {
  const session = model.session;
  const run = session.run.bind(session);
  session.run = (async (...args: Parameters<typeof run>) => {
    entered();
    await gate;
    return run(...args);
  }) as typeof session.run;
  return model;
}
