/**
 * The Lambda predictor's core, free of side effects so that tests drive it directly: load the configured model
 * (in the init phase, from `runtime/lambda/predictor.ts`), put it in a `ModelSlot`, and serve the one predictor
 * app. A bad or missing model never throws out of the init (Lambda would retry the init and the reason would
 * drown in retries): the predictor starts anyway, answers readiness with 503 and the reason, and logs why.
 */
import { nowMs } from '../../lib/clock.ts';
import type { LoadedModel, LoadOptions } from '../../lib/inference/model.ts';
import { ModelUnavailableError } from '../../lib/inference/model-errors.ts';
import {
  handleLambdaEvent,
  type LambdaHttpResult,
  normalBasePath,
} from '../../lib/serving/adapters/lambda.ts';
import { createApp, type PredictorApp } from '../../lib/serving/app.ts';
import { ModelSlot } from '../../lib/serving/host.ts';
import {
  type LambdaContextFields,
  type LambdaLogger,
  lambdaRequestLog,
  PlainLambdaMetrics,
  PlainLogger,
  plainPowertoolsEnvironment,
} from '../../lib/telemetry/plain-powertools.ts';
import {
  METRICS_NAMESPACE,
  type RequestLog,
  type RequestMetrics,
} from '../../lib/telemetry/request-record.ts';
import { type LineSink, serviceName } from '../../lib/telemetry/sink.ts';
import { loadConfiguredModel, modelConfig } from './load.ts';
import type { Prefetch } from './prefetch.ts';

export interface PredictorOptions {
  /** Where MAAP_* and AWS_* settings are read. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Options for `loadModel` (trusted keys, threads, ...). */
  readonly load?: LoadOptions;
  /** Receives every log line and EMF document instead of stdout (tests). */
  readonly sink?: LineSink;
  /** Largest request body. @default the app's (6 MiB, Lambda's synchronous payload limit) */
  readonly bodyLimit?: number;
  /** The package GET started before the heavy modules loaded (see `prefetch.ts`). */
  readonly prefetch?: Prefetch;
  /**
   * The base path of a custom domain's API mapping in front of the routes (see `LambdaAdapterOptions`).
   * @default `MAAP_BASE_PATH`, else none
   */
  readonly basePath?: string;
}

/** How the init went, for logs and tests. */
export type InitOutcome =
  | { readonly ready: true; readonly model: LoadedModel; readonly ms: number }
  | { readonly ready: false; readonly reason: string; readonly error: unknown; readonly ms: number };

export interface Predictor {
  readonly app: PredictorApp;
  readonly slot: ModelSlot;
  /** powertools' Logger, or a `PlainLogger` printing the same lines (see `lambdaTelemetry`). */
  readonly logger: LambdaLogger;
  /** Flushed once per invocation, after the answer. */
  readonly metrics: RequestMetrics;
  readonly init: InitOutcome;
  /** Removed from the front of request paths (normalised: `/ml`), if set. */
  readonly basePath: string | undefined;
}

/** Loads the configured model (never throws) and builds the app around it. */
export async function createPredictor(options: PredictorOptions = {}): Promise<Predictor> {
  const env = options.env ?? process.env;
  const { logger, requestLog, metrics } = await lambdaTelemetry(options.sink);
  const slot = new ModelSlot();
  const started = nowMs();
  let init: InitOutcome;
  try {
    slot.setReason(`loading ${describe(env)}`);
    const model = await loadConfiguredModel(env, options.load, options.prefetch);
    await slot.swap(model);
    init = { ready: true, model, ms: nowMs() - started };
    logger.info('model loaded', {
      model: model.name,
      model_version: model.version,
      package_id: model.id,
      signed: model.signed,
      ...loadStats(model),
      init_ms: Math.round(init.ms),
    });
  } catch (error) {
    options.prefetch?.discard();
    const reason = reasonOf(error, env);
    await slot.unload(reason);
    init = { ready: false, reason, error, ms: nowMs() - started };
    if (error instanceof ModelUnavailableError) logger.warn('no model loaded', { reason });
    else logger.error('no model loaded', { reason, error: error instanceof Error ? error : String(error) });
  }
  const app = createApp({
    models: slot,
    logger: requestLog,
    metrics,
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
  });
  const basePath = normalBasePath(options.basePath ?? env.MAAP_BASE_PATH ?? '');
  return { app, slot, logger, metrics, init, basePath };
}

/** The Lambda context, as the handler uses it (the log lines print the invocation's fields from it). */
export type LambdaContext = LambdaContextFields;
export type LambdaHandler = (event: unknown, context?: LambdaContext) => Promise<LambdaHttpResult>;

/**
 * The Lambda handler around a predictor: Function URL, API Gateway HTTP API (v2) and REST API (v1) events all go
 * through the same app (see `lib/serving/adapters/lambda.ts`); the invocation's context enriches the log lines,
 * and the request's metrics are flushed before the invocation returns.
 */
export function lambdaHandler(predictor: Predictor): LambdaHandler {
  const adapter = predictor.basePath ? { basePath: predictor.basePath } : {};
  return async (event, context) => {
    if (context) predictor.logger.addContext(context);
    try {
      return await handleLambdaEvent(predictor.app, event, adapter);
    } finally {
      predictor.metrics.flush();
    }
  };
}

interface LambdaTelemetry {
  readonly logger: LambdaLogger;
  readonly requestLog: RequestLog;
  readonly metrics: RequestMetrics;
}

/**
 * The predictor's log and metrics, in powertools' formats. Where the environment leaves powertools' output plain
 * (`plainPowertoolsEnvironment`: the usual Lambda configuration), plain writers print the same lines without
 * loading powertools, which would cost 5-10 ms of the cold start; otherwise (a log level above INFO, dev mode,
 * debug sampling, another time zone, metrics disabled, several requests at once) powertools loads and prints
 * them itself.
 */
export async function lambdaTelemetry(
  sink?: LineSink,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LambdaTelemetry> {
  const service = serviceName(env);
  const to = sink ? { sink } : {};
  if (plainPowertoolsEnvironment(env)) {
    const logger = new PlainLogger({ serviceName: service, env, ...to });
    const metrics = new PlainLambdaMetrics({ namespace: METRICS_NAMESPACE, serviceName: service, ...to });
    return { logger, requestLog: lambdaRequestLog(logger), metrics };
  }
  const [{ createRequestLog }, { createRequestMetrics }] = await Promise.all([
    import('../../lib/telemetry/request-log.ts'),
    import('../../lib/telemetry/request-metrics.ts'),
  ]);
  const requestLog = createRequestLog({ serviceName: service, ...to });
  const metrics = createRequestMetrics({ flush: 'manual', serviceName: service, ...to });
  return { logger: requestLog.logger, requestLog, metrics };
}

/** `fraud@1.4.0 from s3://bucket/models`, for messages (the raw settings: they may be what is wrong). */
function describe(env: NodeJS.ProcessEnv): string {
  const version = env.MAAP_MODEL_VERSION?.trim();
  return `${env.MAAP_MODEL?.trim() || '(no MAAP_MODEL)'}${version ? `@${version}` : ''} from ${env.MAAP_REGISTRY?.trim() || '(no MAAP_REGISTRY)'}`;
}

/** The readiness message: what was asked for, and why it is not served. */
function reasonOf(error: unknown, env: NodeJS.ProcessEnv): string {
  const message = error instanceof Error ? error.message : String(error);
  try {
    modelConfig(env);
  } catch {
    return message; // a configuration problem: the message says what to set
  }
  return `cannot serve ${describe(env)}: ${message}`;
}

function loadStats(model: LoadedModel): Record<string, string | number> {
  const { origin, verifyMs, sessionMs, smokeTest, warmUp, totalMs } = model.stats;
  return {
    origin,
    verify_ms: Math.round(verifyMs),
    session_ms: Math.round(sessionMs),
    smoke_test: smokeTest,
    warm_up: warmUp,
    load_ms: Math.round(totalMs),
  };
}
