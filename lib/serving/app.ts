/**
 * The one HTTP application (hono) of the predictor: exactly the Open Inference Protocol v2 REST endpoints, for
 * every channel (Node server, Lambda via `hono/aws-lambda`'s `handle`, edge). Nothing here is specific to a
 * server: the app sees Requests and returns Responses. (When `@hono/node-server` passes the Node request along,
 * headers and the request body are read from it directly: the same values, without building a fetch Request.)
 *
 * Each route has one handler (`endpoint`) doing what middleware would (request id, method check, errors,
 * telemetry): hono then dispatches it without composing a middleware chain. Responses are built with plain
 * header objects, which the Node adapter writes as they are.
 *
 * Every response is JSON (`{"error": "..."}` for errors) and carries `x-request-id`. 4xx for what the caller got
 * wrong (400 bad JSON or request, 404 unknown model, version or route, 405 wrong method, 413 body over the limit,
 * 415 not JSON), 503 while no model is in service, 500 only for our own faults (logged with their stack).
 */
import type { IncomingMessage } from 'node:http';
import { type Context, Hono } from 'hono';
import { InferenceRequestError, NotFoundError, PayloadTooLargeError } from '../errors.ts';
import type { LoadedModel } from '../inference/model.ts';
import { ModelUnavailableError } from '../inference/model-errors.ts';
import { validateRequest } from '../inference/validate.ts';
import { onExit, stdoutLines } from '../telemetry/output.ts';
import { createRequestLog } from '../telemetry/request-log.ts';
import { createRequestMetrics } from '../telemetry/request-metrics.ts';
import type { Operation, RequestLog, RequestMetrics, RequestRecord } from '../telemetry/request-record.ts';
import type { ModelHost } from './host.ts';
import { checkContentType, clip, errorAnswer, MethodNotAllowedError, requestIdFrom } from './http.ts';
import {
  inferenceResponse,
  LIVE_BODY,
  modelMetadataBody,
  modelReadyBody,
  READY_BODY,
  SERVER_VERSION,
  serverMetadataBody,
} from './protocol.ts';

/** 6 MiB: the largest synchronous Lambda payload, a sensible default everywhere. */
export const DEFAULT_BODY_LIMIT = 6 * 1024 * 1024;

export interface AppOptions {
  /** Owns the model in service (see `ModelSlot`). */
  readonly models: ModelHost;
  /** Largest request body in bytes; enforced while the body streams in. @default 6 MiB */
  readonly bodyLimit?: number;
  /** @default a powertools request log on stdout, written in batches (see `telemetry/output.ts`) */
  readonly logger?: RequestLog;
  /**
   * @default powertools EMF metrics on stdout, aggregated and published every second (the Node server; Lambda
   * passes its own, flushed once per invocation)
   */
  readonly metrics?: RequestMetrics;
  /** Server version reported by `GET /v2`. @default maap's package version */
  readonly version?: string;
  /**
   * Hand requests to the log and metrics in batches, once per event-loop turn, after the responses went out,
   * instead of one by one before each response. @default true when the app builds its own telemetry (the Node
   * server), false when `logger` or `metrics` are given (Lambda flushes its metrics right after the response)
   */
  readonly batchReports?: boolean;
}

/** What one request carries from its handler to its log line and metrics. */
interface Exchange {
  readonly requestId: string;
  readonly operation: Operation;
  /** The model in service when the request was answered. */
  served?: LoadedModel;
  batchSize?: number;
  errorMessage?: string;
  fault?: unknown;
}

export type PredictorApp = Hono & {
  /**
   * Publishes the metrics aggregated so far and writes out buffered telemetry; resolves once written (the Node
   * server calls it at shutdown, after the last request).
   */
  flushTelemetry(): Promise<void>;
};
type C = Context;
type Handler = (c: C, x: Exchange) => Response | Promise<Response>;

/** The Node request behind a request, when the app runs on `@hono/node-server` (its `HttpBindings`). */
function nodeRequest(c: C): IncomingMessage | undefined {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
}

/**
 * A request header, as `Headers#get` answers it (duplicates joined with ", "). On Node it is read from the raw
 * header list: asking the fetch Request for its `headers` builds a whole `Headers` object per request.
 */
function header(c: C, name: string): string | undefined {
  const incoming = nodeRequest(c);
  if (incoming === undefined) return c.req.header(name);
  const raw = incoming.rawHeaders;
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (sameName(raw[i] as string, name))
      value = value === undefined ? raw[i + 1] : `${value}, ${raw[i + 1]}`;
  }
  return value;
}

/** Whether header name `key` is `lower` (lowercase), ignoring ASCII case, without allocating. */
function sameName(key: string, lower: string): boolean {
  if (key.length !== lower.length) return false;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** A JSON answer carrying the request id (a plain header object: the Node adapter writes it as is). */
function json(x: Exchange, status: number, body: string, allow?: string): Response {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': x.requestId };
  if (allow !== undefined) headers.allow = allow;
  return new Response(body, { status, headers });
}

export function createApp(options: AppOptions): PredictorApp {
  const { models } = options;
  const maxBody = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const logger = options.logger ?? createRequestLog({ output: stdoutLines() });
  const metrics = options.metrics ?? createRequestMetrics({ output: stdoutLines() });
  const serverMetadata = serverMetadataBody(options.version ?? SERVER_VERSION);
  const app = new Hono();

  /** Hands one request to the log and the metrics. Telemetry must never fail a request. */
  function publish(record: RequestRecord): void {
    try {
      logger.logRequest(record);
    } catch (err) {
      console.error('maap: request log failed:', err);
    }
    try {
      metrics.recordRequest(record);
    } catch (err) {
      console.error('maap: request metrics failed:', err);
    }
  }

  // Batched reports: formatting lines back to back costs a fraction of doing it between requests (hot code and
  // data), and none of it delays a response. Written out at the latest at shutdown (`flushTelemetry`) or exit.
  const batch = options.batchReports ?? (options.logger === undefined && options.metrics === undefined);
  let queued: RequestRecord[] = [];
  const drain = (): void => {
    const records = queued;
    queued = [];
    for (const record of records) publish(record);
  };
  if (batch) {
    onExit(() => {
      drain();
      metrics.flush();
    });
  }

  function report(c: C, x: Exchange, status: number, latencyMs: number): void {
    const served =
      x.served ??
      (() => {
        const state = models.state();
        return state.ready ? state.model : undefined;
      })();
    const record: { -readonly [K in keyof RequestRecord]: RequestRecord[K] } = {
      requestId: x.requestId,
      method: c.req.method,
      path: clip(c.req.path, 256),
      status,
      latencyMs,
      operation: x.operation,
    };
    if (served) record.model = { name: served.name, version: served.version };
    if (x.batchSize !== undefined) record.batchSize = x.batchSize;
    if (x.errorMessage !== undefined) record.error = x.errorMessage;
    if (x.fault !== undefined) record.fault = x.fault;
    if (!batch) publish(record);
    else if (queued.push(record) === 1) setImmediate(drain);
  }

  /** The answer to a thrown error: 4xx and 503 say what went wrong, anything else is a 500 (logged with its stack). */
  function failure(x: Exchange, err: unknown): Response {
    const answer = errorAnswer(err, x.requestId);
    x.errorMessage = answer.message;
    if (answer.fault !== undefined) x.fault = answer.fault;
    const allow = err instanceof MethodNotAllowedError ? err.allow : undefined;
    return json(x, answer.status, JSON.stringify({ error: answer.message }), allow);
  }

  /**
   * One route's whole handling, as the route's only handler (hono then skips its middleware composition): the
   * request id, the method check (405), the handler, the error answer, and the request's telemetry.
   */
  function endpoint(method: 'GET' | 'POST' | undefined, operation: Operation, handler: Handler) {
    return async (c: C): Promise<Response> => {
      const start = performance.now();
      const x: Exchange = { requestId: requestIdFrom(header(c, 'x-request-id')), operation };
      let res: Response;
      try {
        const actual = c.req.method;
        // HEAD is a GET without its body (hono strips it).
        if (method !== undefined && actual !== method && !(method === 'GET' && actual === 'HEAD')) {
          throw new MethodNotAllowedError(
            `${actual} is not allowed on ${clip(c.req.path)}: use ${method}`,
            method,
          );
        }
        res = await handler(c, x);
      } catch (err) {
        res = failure(x, err);
      }
      report(c, x, res.status, performance.now() - start);
      return res;
    };
  }

  /** The model in service if it is the one the path names (404 otherwise, 503 when there is none). */
  function pick(x: Exchange, name: string, version: string | undefined): LoadedModel {
    const state = models.state();
    if (!state.ready) throw new ModelUnavailableError(`no model is ready: ${state.reason}`);
    const model = state.model;
    x.served = model;
    if (name !== model.name) {
      throw new NotFoundError(
        `unknown model ${JSON.stringify(clip(name))}: this server serves ${JSON.stringify(model.name)}`,
      );
    }
    if (version !== undefined && version !== model.version) {
      throw new NotFoundError(
        `unknown version ${JSON.stringify(clip(version))} of model ${JSON.stringify(model.name)}: this server serves version ${model.version}`,
      );
    }
    return model;
  }

  const route = (
    method: 'GET' | 'POST',
    paths: readonly string[],
    operation: Operation,
    handler: Handler,
  ): void => {
    const handle = endpoint(method, operation, handler);
    for (const path of paths) app.all(path, handle);
  };

  route('GET', ['/v2/health/live'], 'health', (_c, x) => json(x, 200, LIVE_BODY));
  route('GET', ['/v2/health/ready'], 'health', (_c, x) => {
    const state = models.state();
    if (!state.ready) throw new ModelUnavailableError(state.reason);
    x.served = state.model;
    return json(x, 200, READY_BODY);
  });
  route('GET', ['/v2', '/v2/'], 'server-metadata', (_c, x) => json(x, 200, serverMetadata));
  route('GET', ['/v2/models/:name', '/v2/models/:name/versions/:version'], 'model-metadata', (c, x) =>
    json(x, 200, modelMetadataBody(pick(x, c.req.param('name') ?? '', c.req.param('version')))),
  );
  route(
    'GET',
    ['/v2/models/:name/ready', '/v2/models/:name/versions/:version/ready'],
    'model-ready',
    (c, x) => json(x, 200, modelReadyBody(pick(x, c.req.param('name') ?? '', c.req.param('version')))),
  );
  route(
    'POST',
    ['/v2/models/:name/infer', '/v2/models/:name/versions/:version/infer'],
    'infer',
    async (c, x) => {
      const name = c.req.param('name') ?? '';
      const version = c.req.param('version');
      checkContentType(header(c, 'content-type'));
      checkDeclaredLength(c, maxBody);
      pick(x, name, version); // answer 404/503 before reading a body
      const incoming = nodeRequest(c);
      const bytes = incoming
        ? await readNodeBody(incoming, maxBody)
        : await readWebBody(c.req.raw.body, maxBody);
      const body = parseJson(utf8.decode(bytes));
      // The model in service when the body has arrived: a swap in between moves the request to the new model.
      const model = pick(x, name, version);
      const request = validateRequest(body, model.signature, model.limits);
      x.batchSize = request.batchSize;
      const outputs = await model.run(request);
      return json(x, 200, JSON.stringify(inferenceResponse(model, request.id, outputs)));
    },
  );

  const notFound = endpoint(undefined, 'other', (c) => {
    throw new NotFoundError(
      `no such endpoint: ${c.req.method} ${clip(c.req.path)} (see the Open Inference Protocol v2 REST API)`,
    );
  });
  app.notFound(notFound);
  // Every handler answers its own errors; this is for a fault inside hono itself.
  app.onError((err, c) => {
    const x: Exchange = { requestId: requestIdFrom(header(c, 'x-request-id')), operation: 'other' };
    const res = failure(x, err);
    report(c, x, res.status, 0);
    return res;
  });

  return Object.assign(app, {
    async flushTelemetry(): Promise<void> {
      drain();
      metrics.flush();
      await Promise.all([logger.flush?.(), metrics.drain?.()]);
    },
  });
}

/** A 413 before the body is read when its Content-Length says it is larger than `limit`. */
function checkDeclaredLength(c: C, limit: number): void {
  const length = header(c, 'content-length');
  if (length !== undefined && header(c, 'transfer-encoding') === undefined) {
    if (Number.parseInt(length, 10) > limit) throw tooLarge(limit);
  }
}

/**
 * Request bodies are decoded as `Request#text` does: UTF-8, a leading BOM dropped. They are read straight from
 * the Node request when there is one (the fetch Request's stream costs a web stream, an abort signal and a
 * `Request` per request), otherwise from the Request's stream; either way refused with a 413 as soon as they
 * stream past the limit.
 */
const utf8 = new TextDecoder();

function tooLarge(limit: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`the request body is larger than the limit of ${limit} bytes`);
}

/** A body being read from a Node request (its listeners are shared functions: no closures per request). */
interface NodeBodyRead {
  readonly chunks: Buffer[];
  size: number;
  readonly limit: number;
  readonly resolve: (bytes: Uint8Array) => void;
  readonly reject: (err: Error) => void;
}
const bodyRead = Symbol('maap.bodyRead');
type Reading = IncomingMessage & { [bodyRead]?: NodeBodyRead };

function readNodeBody(incoming: Reading, limit: number): Promise<Uint8Array> {
  if (incoming.readableEnded) return Promise.resolve(new Uint8Array(0));
  return new Promise((resolve, reject) => {
    incoming[bodyRead] = { chunks: [], size: 0, limit, resolve, reject };
    incoming.on('data', onBodyData);
    incoming.on('end', onBodyEnd);
    incoming.on('error', onBodyAbort);
    incoming.on('close', onBodyAbort);
  });
}

function settleBodyRead(incoming: Reading): NodeBodyRead | undefined {
  const read = incoming[bodyRead];
  incoming[bodyRead] = undefined;
  incoming.off('data', onBodyData);
  incoming.off('end', onBodyEnd);
  incoming.off('error', onBodyAbort);
  incoming.off('close', onBodyAbort);
  return read;
}

function onBodyData(this: Reading, chunk: Buffer): void {
  const read = this[bodyRead];
  if (read === undefined) return;
  read.size += chunk.length;
  if (read.size > read.limit) {
    settleBodyRead(this);
    this.pause(); // the adapter drains (or drops) the rest once the answer is sent
    read.reject(tooLarge(read.limit));
  } else read.chunks.push(chunk);
}

function onBodyEnd(this: Reading): void {
  const read = settleBodyRead(this);
  if (read === undefined) return;
  read.resolve(read.chunks.length === 1 ? (read.chunks[0] as Buffer) : Buffer.concat(read.chunks, read.size));
}

function onBodyAbort(this: Reading): void {
  settleBodyRead(this)?.reject(
    new InferenceRequestError('the request body was cut off: the client closed the connection'),
  );
}

async function readWebBody(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

function parseJson(text: string): unknown {
  if (text.trim() === '') {
    throw new InferenceRequestError('the request body is empty: send an inference request as JSON');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InferenceRequestError(`malformed JSON in the request body: ${(err as Error).message}`);
  }
}
