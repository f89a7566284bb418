/**
 * The one HTTP application (hono) of the predictor: exactly the Open Inference Protocol v2 REST endpoints, for
 * every channel (Node server, Lambda via `hono/aws-lambda`'s `handle`, edge). Nothing here is specific to a
 * server: the app only sees Requests and returns Responses.
 *
 * Every response is JSON (`{"error": "..."}` for errors) and carries `x-request-id`. 4xx for what the caller got
 * wrong (400 bad JSON or request, 404 unknown model, version or route, 405 wrong method, 413 body over the limit,
 * 415 not JSON), 503 while no model is in service, 500 only for our own faults (logged with their stack).
 */
import { type Context, Hono } from 'hono';
import { bodyLimit as limitBody } from 'hono/body-limit';
import { InferenceRequestError, NotFoundError, PayloadTooLargeError } from '../errors.ts';
import type { LoadedModel } from '../inference/model.ts';
import { ModelUnavailableError } from '../inference/model-errors.ts';
import { validateRequest } from '../inference/validate.ts';
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
  /** @default a powertools request log on stdout */
  readonly logger?: RequestLog;
  /** @default powertools EMF metrics on stdout, flushed per request */
  readonly metrics?: RequestMetrics;
  /** Server version reported by `GET /v2`. @default maap's package version */
  readonly version?: string;
}

interface Vars {
  requestId: string;
  operation: Operation;
  served?: LoadedModel;
  batchSize?: number;
  errorMessage?: string;
  fault?: unknown;
}
export type PredictorApp = Hono<{ Variables: Vars }>;
type C = Context<{ Variables: Vars }>;

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

function json(c: C, status: number, body: string): Response {
  return c.body(body, status as 200, JSON_HEADERS);
}

export function createApp(options: AppOptions): PredictorApp {
  const { models } = options;
  const maxBody = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const logger = options.logger ?? createRequestLog();
  const metrics = options.metrics ?? createRequestMetrics();
  const serverMetadata = serverMetadataBody(options.version ?? SERVER_VERSION);
  const app: PredictorApp = new Hono<{ Variables: Vars }>();

  app.use(async (c, next) => {
    const start = performance.now();
    const requestId = requestIdFrom(c.req.header('x-request-id'));
    c.set('requestId', requestId);
    c.set('operation', 'other');
    c.header('x-request-id', requestId);
    await next();
    report(c, performance.now() - start);
  });

  function report(c: C, latencyMs: number): void {
    const served =
      c.get('served') ??
      (() => {
        const state = models.state();
        return state.ready ? state.model : undefined;
      })();
    const record: RequestRecord = {
      requestId: c.get('requestId'),
      method: c.req.method,
      path: clip(c.req.path, 256),
      status: c.res.status,
      latencyMs,
      operation: c.get('operation'),
      ...(served ? { model: { name: served.name, version: served.version } } : {}),
      ...(c.get('batchSize') !== undefined ? { batchSize: c.get('batchSize') } : {}),
      ...(c.get('errorMessage') !== undefined ? { error: c.get('errorMessage') } : {}),
      ...(c.get('fault') !== undefined ? { fault: c.get('fault') } : {}),
    };
    // Telemetry must never fail a request (console: the one output every runtime has).
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

  /** The model in service if it is the one the path names (404 otherwise, 503 when there is none). */
  function pick(c: C, name: string, version: string | undefined): LoadedModel {
    const state = models.state();
    if (!state.ready) throw new ModelUnavailableError(`no model is ready: ${state.reason}`);
    const model = state.model;
    c.set('served', model);
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
    handler: (c: C) => Response | Promise<Response>,
  ): void => {
    for (const path of paths) {
      const setOperation = async (c: C, next: () => Promise<void>) => {
        c.set('operation', operation);
        await next();
      };
      if (method === 'POST') {
        app.post(path, setOperation, contentType, bodyLimit, handler);
      } else {
        app.get(path, setOperation, handler);
      }
      app.all(path, setOperation, (c) => {
        throw new MethodNotAllowedError(
          `${c.req.method} is not allowed on ${clip(c.req.path)}: use ${method}`,
          method,
        );
      });
    }
  };
  const contentType = async (c: C, next: () => Promise<void>) => {
    checkContentType(c.req.header('content-type'));
    await next();
  };
  const bodyLimit = limitBody({
    maxSize: maxBody,
    onError: () => {
      throw new PayloadTooLargeError(`the request body is larger than the limit of ${maxBody} bytes`);
    },
  });

  route('GET', ['/v2/health/live'], 'health', (c) => json(c, 200, LIVE_BODY));
  route('GET', ['/v2/health/ready'], 'health', (c) => {
    const state = models.state();
    if (!state.ready) throw new ModelUnavailableError(state.reason);
    c.set('served', state.model);
    return json(c, 200, READY_BODY);
  });
  route('GET', ['/v2', '/v2/'], 'server-metadata', (c) => json(c, 200, serverMetadata));
  route('GET', ['/v2/models/:name', '/v2/models/:name/versions/:version'], 'model-metadata', (c) =>
    json(c, 200, modelMetadataBody(pick(c, c.req.param('name') ?? '', c.req.param('version')))),
  );
  route('GET', ['/v2/models/:name/ready', '/v2/models/:name/versions/:version/ready'], 'model-ready', (c) =>
    json(c, 200, modelReadyBody(pick(c, c.req.param('name') ?? '', c.req.param('version')))),
  );
  route(
    'POST',
    ['/v2/models/:name/infer', '/v2/models/:name/versions/:version/infer'],
    'infer',
    async (c) => {
      const name = c.req.param('name') ?? '';
      const version = c.req.param('version');
      pick(c, name, version); // answer 404/503 before reading a body
      const body = parseJson(await c.req.text());
      // The model in service when the body has arrived: a swap in between moves the request to the new model.
      const model = pick(c, name, version);
      const request = validateRequest(body, model.signature, model.limits);
      c.set('batchSize', request.batchSize);
      const outputs = await model.run(request);
      return json(c, 200, JSON.stringify(inferenceResponse(model, request.id, outputs)));
    },
  );

  app.notFound((c) => {
    const message = `no such endpoint: ${c.req.method} ${clip(c.req.path)} (see the Open Inference Protocol v2 REST API)`;
    c.set('errorMessage', message);
    return json(c, 404, JSON.stringify({ error: message }));
  });

  app.onError((err, c) => {
    const answer = errorAnswer(err, c.get('requestId') ?? '-');
    c.set('errorMessage', answer.message);
    if (answer.fault !== undefined) c.set('fault', answer.fault);
    if (err instanceof MethodNotAllowedError) c.header('allow', err.allow);
    return json(c, answer.status, JSON.stringify({ error: answer.message }));
  });

  return app;
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
