/**
 * The one HTTP application (hono) of the predictor: exactly the Open Inference Protocol v2 REST endpoints, for
 * every channel: the Node server and the Lambda handler (`adapters/node.ts`, `adapters/lambda.ts`) and any
 * fetch runtime (edge). Nothing here is specific to a server. Given a fetch `Request`, the app answers fetch
 * `Response`s; given an adapter's `RequestSource` (see `exchange.ts`), it reads headers and the body from it and
 * answers `PlainResponse`s: the same answers, without fetch objects.
 *
 * Each route has one handler (`endpoint`) doing what middleware would (request id, method check, errors,
 * telemetry): hono then dispatches it without composing a middleware chain.
 *
 * Every response is JSON (`{"error": "..."}` for errors) and carries `x-request-id`. 4xx for what the caller got
 * wrong (400 bad JSON or request, 404 unknown model, version or route, 405 wrong method, 413 body over the limit,
 * 415 not JSON), 503 while no model is in service, 500 only for our own faults (logged with their stack).
 */
import type { Context } from 'hono';
// hono's base class with the router of our choice (router.ts): hono's PatternRouter, whose first match costs ~0.2 ms
// where the default router costs ~2.4 ms of a Lambda cold start (and whose code is not bundled), with its answers
// kept per path.
import { HonoBase } from 'hono/hono-base';
import { PatternRouter } from 'hono/router/pattern-router';
import { nowMs } from '../clock.ts';
import { InferenceRequestError, NotFoundError, PayloadTooLargeError, RequestCutOffError } from '../errors.ts';
import type { LoadedModel } from '../inference/model.ts';
import { ModelUnavailableError } from '../inference/model-errors.ts';
import { validateRequestLazily } from '../inference/request-check.ts';
import { onExit } from '../telemetry/output.ts';
import type { Operation, RequestLog, RequestMetrics, RequestRecord } from '../telemetry/request-record.ts';
import {
  type AnswerLimit,
  appPath,
  PlainResponse,
  type Refusal,
  type RequestSource,
  requestSource,
  tooLarge,
} from './exchange.ts';
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
import { MemoRouter } from './router.ts';

/** The status a request is logged with when its client left before the answer was written (nginx's). */
export const CLIENT_CLOSED = 499;

/** 6 MiB: the largest synchronous Lambda payload, a sensible default everywhere. */
export const DEFAULT_BODY_LIMIT = 6 * 1024 * 1024;

export interface AppOptions {
  /** Owns the model in service (see `ModelSlot`). */
  readonly models: ModelHost;
  /** Largest request body in bytes; enforced while the body streams in. @default 6 MiB */
  readonly bodyLimit?: number;
  /**
   * The request log: the Node server's is `serverTelemetry()`'s (powertools' format on stdout, written in batches),
   * Lambda's prints each line as the request ends.
   */
  readonly logger: RequestLog;
  /**
   * The request metrics: the Node server's are `serverTelemetry()`'s (EMF on stdout, aggregated and published
   * every second), Lambda's are flushed once per invocation.
   */
  readonly metrics: RequestMetrics;
  /** Server version reported by `GET /v2`. @default maap's package version */
  readonly version?: string;
  /**
   * Hand requests to the log and metrics in batches, once per event-loop turn, after the responses went out,
   * instead of one by one before each response (`serverTelemetry()` sets it). Lambda must not: it flushes its
   * metrics right after the response. @default false
   */
  readonly batchReports?: boolean;
}

/**
 * What one request carries from its handler to its log line and metrics. A class, so that every request's has the
 * same fields from the start (one hidden class: the code that reads them stays monomorphic).
 */
class Exchange {
  /** The model in service when the request was answered. */
  served: LoadedModel | undefined = undefined;
  batchSize: number | undefined = undefined;
  errorMessage: string | undefined = undefined;
  fault: unknown = undefined;
  /** The body was cut off by the client (the message says so already). */
  cutOff = false;
  constructor(
    readonly requestId: string,
    readonly operation: Operation,
    /** Where an adapter lets the app read the request (and take a `PlainResponse`); none for a fetch Request. */
    readonly source: RequestSource | undefined,
  ) {}
}

/** A request's record for the log and the metrics, every field set (see `Exchange`). */
class Report implements RequestRecord {
  constructor(
    readonly requestId: string,
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly latencyMs: number,
    readonly operation: Operation,
    readonly model: LoadedModel | undefined,
    readonly batchSize: number | undefined,
    readonly error: string | undefined,
    readonly fault: unknown,
    readonly refused = false,
  ) {}
}

export type PredictorApp = HonoBase & {
  /**
   * Publishes the metrics aggregated so far and writes out buffered telemetry; resolves once written (the Node
   * server calls it at shutdown, after the last request).
   */
  flushTelemetry(): Promise<void>;
  /**
   * Logs and counts a request the server answered itself (see `Refusal`) as the app's own answers are: one log
   * line, with the endpoint its path names, and a client error in the metrics when that is an inference endpoint.
   * Its latency is 0: the server did not time it.
   */
  reportRefusal(refusal: Refusal): void;
};
type C = Context;
type Handler = (c: C, x: Exchange) => Response | Promise<Response>;

/** A request header: from the adapter's `RequestSource` when there is one, otherwise from the fetch Request. */
function header(c: C, source: RequestSource | undefined, name: string): string | undefined {
  return source ? source.header(name) : c.req.header(name);
}

/** A JSON answer carrying the request id: a `PlainResponse` for an adapter, a fetch `Response` otherwise. */
function json(x: Exchange, status: number, body: string, allow?: string): Response {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': x.requestId };
  if (allow !== undefined) headers.allow = allow;
  return x.source
    ? new PlainResponse(status, headers, body).asResponse()
    : new Response(body, { status, headers });
}

/** The request's `Exchange`: its id (the caller's when sane) and, from an adapter, where to read it from. */
function exchange(c: C, operation: Operation): Exchange {
  const source = requestSource(c.env);
  return new Exchange(requestIdFrom(header(c, source, 'x-request-id')), operation, source);
}

export function createApp(options: AppOptions): PredictorApp {
  const { models } = options;
  const maxBody = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const { logger, metrics } = options;
  const serverMetadata = serverMetadataBody(options.version ?? SERVER_VERSION);
  const app = new HonoBase({ router: new MemoRouter(), getPath: appPath });

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
  const batch = options.batchReports ?? false;
  let queued: RequestRecord[] = [];
  const drain = (): void => {
    const records = queued;
    queued = [];
    for (const record of records) publish(record);
  };
  const enqueue = (record: RequestRecord): void => {
    if (!batch) publish(record);
    else if (queued.push(record) === 1) setImmediate(drain);
  };
  if (batch) {
    onExit(() => {
      drain();
      metrics.flush();
    });
  }

  function report(c: C, x: Exchange, answered: number, latencyMs: number): void {
    let status = answered;
    const gone = x.source?.gone?.();
    if (gone !== undefined) {
      if (gone === 'answered') return; // the server answered it itself, and logs that answer
      // A client that left: 499, unless the answer was a fault of ours (logged as such, with its stack).
      if (answered < 500) {
        status = CLIENT_CLOSED;
        const note = `the client closed the connection before the answer (${answered}) was written`;
        if (x.errorMessage === undefined) x.errorMessage = note;
        else if (!x.cutOff) x.errorMessage = `${x.errorMessage} (${note})`;
      }
    }
    let served = x.served;
    if (served === undefined) {
      const state = models.state();
      if (state.ready) served = state.model;
    }
    const record = new Report(
      x.requestId,
      c.req.method,
      clip(c.req.path, 256),
      status,
      latencyMs,
      x.operation,
      served,
      x.batchSize,
      x.errorMessage,
      x.fault,
    );
    enqueue(record);
  }

  /** The answer to a thrown error: 4xx and 503 say what went wrong, anything else is a 500 (logged with its stack). */
  function failure(x: Exchange, err: unknown): Response {
    const answer = errorAnswer(err, x.requestId);
    x.errorMessage = answer.message;
    x.cutOff = err instanceof RequestCutOffError;
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
      const start = nowMs();
      const x = exchange(c, operation);
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
      report(c, x, res.status, nowMs() - start);
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

  /** Each route's path and operation, for the refusals (`operationOf`). */
  const operations: [string, Operation][] = [];
  const route = (
    method: 'GET' | 'POST',
    paths: readonly string[],
    operation: Operation,
    handler: Handler,
  ): void => {
    const handle = endpoint(method, operation, handler);
    for (const path of paths) {
      app.all(path, handle);
      operations.push([path, operation]);
    }
  };
  /** The operation of the route `path` reaches: 'other' for none (a 404). Built on the first refusal. */
  let operationRouter: PatternRouter<Operation> | undefined;
  const operationOf = (method: string, path: string): Operation => {
    if (operationRouter === undefined) {
      operationRouter = new PatternRouter<Operation>();
      for (const [route, operation] of operations) operationRouter.add('ALL', route, operation);
    }
    return operationRouter.match(method, path)[0][0]?.[0] ?? 'other';
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
      checkContentType(header(c, x.source, 'content-type'));
      checkDeclaredLength(c, x, maxBody);
      pick(x, name, version); // answer 404/503 before reading a body
      const bytes = x.source ? await x.source.body(maxBody) : await readWebBody(c.req.raw.body, maxBody);
      const body = parseJson(decodeBody(bytes));
      // The model in service when the body has arrived: a swap in between moves the request to the new model.
      const model = pick(x, name, version);
      // zod (validate.ts) loads only for a body the structural fast path cannot vouch for.
      const checked = validateRequestLazily(body, model.signature, model.limits);
      const request = checked instanceof Promise ? await checked : checked;
      x.batchSize = request.batchSize;
      const outputs = await model.run(request);
      const answer = JSON.stringify(inferenceResponse(model, request.id, outputs));
      // The channel's own limit on an answer (Lambda's response payload): a bigger answer is a 413 that says so,
      // logged as such, instead of one the channel would drop.
      const limit = x.source?.answerLimit;
      if (limit !== undefined) checkAnswerSize(answer, limit);
      return json(x, 200, answer);
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
    const x = exchange(c, 'other');
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
    reportRefusal(refusal: Refusal): void {
      const state = models.state();
      const method = refusal.method ?? '-';
      const path = refusal.target === undefined ? '-' : clip(refusal.target.split('?', 1)[0] as string, 256);
      const record = new Report(
        refusal.requestId,
        method,
        path,
        refusal.status,
        0,
        refusal.target === undefined ? 'other' : operationOf(method, path),
        state.ready ? state.model : undefined,
        undefined,
        refusal.error,
        undefined,
        true,
      );
      enqueue(record);
    },
  });
}

/** A 413 before the body is read when its Content-Length says it is larger than `limit`. */
function checkDeclaredLength(c: C, x: Exchange, limit: number): void {
  const length = header(c, x.source, 'content-length');
  if (length !== undefined && header(c, x.source, 'transfer-encoding') === undefined) {
    if (Number.parseInt(length, 10) > limit) throw tooLarge(limit);
  }
}

/**
 * Request bodies are decoded from UTF-8, a leading BOM dropped, as `Request#text` does, but strictly: JSON text is
 * UTF-8 (RFC 8259), and bytes that are not would reach the model as U+FFFD (`Request#text` substitutes them),
 * which the codec refuses when a string says so itself (a lone surrogate). They come from the adapter's
 * `RequestSource`, otherwise from the Request's stream; either way refused with a 413 as soon as they are known
 * to exceed the limit.
 */
const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeBody(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new InferenceRequestError(
      `the request body is not valid UTF-8 (an ill-formed sequence at byte ${illFormedUtf8At(bytes)}): JSON text must be UTF-8`,
    );
  }
}

/**
 * Where the first ill-formed UTF-8 sequence starts (Unicode's table of well-formed byte sequences: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or -1. Only for the message: the decoder itself validates.
 */
export function illFormedUtf8At(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    // The sequence's length, and the range its second byte must be in (any other is 0x80..0xbf).
    let n = 4;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) n = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      n = 3;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b === 0xf0) lo = 0x90;
    else if (b === 0xf4) hi = 0x8f;
    else if (b < 0xf1 || b > 0xf3) return i;
    for (let k = 1; k < n; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n;
  }
  return -1;
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

function checkAnswerSize(answer: string, limit: AnswerLimit): void {
  const size = limit.size(answer);
  if (size <= limit.bytes) return;
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  throw new PayloadTooLargeError(
    `the answer would be ${mb(size)} (${size} bytes), over the ${mb(limit.bytes)} this function can return: send fewer rows per request, or ask for fewer outputs`,
  );
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
