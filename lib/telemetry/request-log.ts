/**
 * The request log: one JSON line per request in powertools' Logger format (level, message, timestamp, service,
 * sampling_rate, plus the fields below in snake_case, the powertools convention). 5xx answers log at ERROR, a
 * 500 with the exception's name, message and stack under `error` (a 503 says why in `error_message`); everything
 * else at INFO with message `request`.
 *
 * With a buffered `output` (the Node server), INFO lines take a fast path: the same bytes powertools prints for
 * them, written without its per-call machinery (several environment reads, attribute merges, a JSON replacer:
 * ~7 µs a line, against ~0.5 µs). It applies while the Logger is this module's own, prints INFO, and has nothing
 * that would change the line (no persistent or temporary keys, no Lambda context, no X-Ray trace id, UTC
 * timestamps, compact JSON); otherwise, and for ERROR lines, powertools formats the line itself.
 */
import { Logger, LogLevelThreshold } from '@aws-lambda-powertools/logger';
import { type LineOutput, outputConsole } from './output.ts';
import { plainFormat } from './plain-powertools.ts';
import { logRequestThrough, type RequestLog, type RequestRecord, roundLatency } from './request-record.ts';
import { type LineSink, redirectPowertools, serviceName } from './sink.ts';

export interface RequestLogOptions {
  /** @default $POWERTOOLS_SERVICE_NAME, else `maap-predictor` */
  readonly serviceName?: string;
  /** Receives each line instead of stdout/stderr (tests). */
  readonly sink?: LineSink;
  /** Where INFO lines go (batched stdout, see `output.ts`); ERROR lines and warnings go to stderr. */
  readonly output?: LineOutput;
  /** An existing Logger to log through (one the caller also logs through, or adds a Lambda context to). */
  readonly logger?: Logger;
}

export interface PowertoolsRequestLog extends RequestLog {
  readonly logger: Logger;
}

/**
 * The request log's own Logger: it notes when it is given keys or a Lambda context, which the fast path does not
 * print (persistent keys are checked on every line).
 */
class RequestLogger extends Logger {
  plain = true;
  #info: boolean | undefined;
  /** Whether INFO lines are printed (cached: reading the level reads the environment). */
  get infoEnabled(): boolean {
    this.#info ??= this.level <= LogLevelThreshold.INFO;
    return this.#info;
  }
  override setLogLevel(logLevel: Parameters<Logger['setLogLevel']>[0]): void {
    super.setLogLevel(logLevel);
    this.#info = undefined;
  }
  override refreshSampleRateCalculation(): void {
    super.refreshSampleRateCalculation();
    this.#info = undefined;
  }
  override addContext(context: Parameters<Logger['addContext']>[0]): void {
    this.plain = false;
    super.addContext(context);
  }
  override appendKeys(attributes: Parameters<Logger['appendKeys']>[0]): void {
    this.plain = false;
    super.appendKeys(attributes);
  }
  /** The service name and sample rate powertools prints (its `powertoolsLogData`), if it still keeps them there. */
  printed(): { service: string; samplingRate: number } | undefined {
    const data = (
      this as unknown as { powertoolsLogData?: { serviceName?: unknown; sampleRateValue?: unknown } }
    ).powertoolsLogData;
    const service = data?.serviceName;
    const rate = data?.sampleRateValue;
    return typeof service === 'string' && service !== '' && typeof rate === 'number'
      ? { service, samplingRate: rate }
      : undefined;
  }
}

export function createRequestLog(options: RequestLogOptions = {}): PowertoolsRequestLog {
  const own = options.logger === undefined;
  const logger = options.logger ?? new RequestLogger({ serviceName: options.serviceName ?? serviceName() });
  const output = options.sink ? undefined : options.output;
  if (options.sink) redirectPowertools(logger, options.sink);
  else if (output) redirectPowertools(logger, outputConsole(output));
  const fast =
    own && output !== undefined && plainEnvironment() ? fastLine(logger as RequestLogger) : undefined;
  return {
    logger,
    ...(output ? { flush: () => output.drain() } : {}),
    logRequest(record) {
      const line = record.status < 500 ? fast?.(record) : undefined;
      if (line !== undefined) (output as LineOutput).write(line);
      else logRequestThrough(logger, record);
    },
  };
}

/** Nothing in the environment changes powertools' plain line: no dev mode, UTC timestamps, no trace id. */
function plainEnvironment(env: NodeJS.ProcessEnv = process.env): boolean {
  return plainFormat(env) && !env._X_AMZN_TRACE_ID && !env.AWS_LAMBDA_MAX_CONCURRENCY;
}

/**
 * The INFO `request` line exactly as powertools' default formatter prints it (`{"level":"INFO","message":
 * "request","timestamp":...,"service":...,"sampling_rate":...,` then `requestLogFields` in their order), built
 * by concatenation; undefined when powertools must print it (the logger is no longer plain, INFO is not logged,
 * or a field is empty or not finite, which powertools drops or prints as null).
 */
function fastLine(logger: RequestLogger): ((record: RequestRecord) => string | undefined) | undefined {
  const printed = logger.printed();
  if (printed === undefined) return undefined;
  const head = '{"level":"INFO","message":"request","timestamp":"';
  const base = `","service":${JSON.stringify(printed.service)},"sampling_rate":${JSON.stringify(printed.samplingRate)}`;
  const str = JSON.stringify;
  let lastMs = 0;
  let lastStamp = '';
  // The JSON of what repeats from one request to the next (the path, the model), kept from the last line.
  let lastMethod = '';
  let methodJson = '""';
  let lastPath = '';
  let pathJson = '""';
  let lastName = '';
  let lastVersion = '';
  let modelJson = '';
  return (r) => {
    if (!logger.plain || !logger.infoEnabled) return undefined;
    for (const _ in logger.getPersistentLogAttributes()) return undefined;
    const latency = roundLatency(r.latencyMs);
    if (
      r.requestId === '' ||
      r.method === '' ||
      r.path === '' ||
      r.model?.name === '' ||
      r.model?.version === '' ||
      r.error === '' ||
      !Number.isFinite(r.status) ||
      !Number.isFinite(latency) ||
      (r.batchSize !== undefined && !Number.isFinite(r.batchSize))
    ) {
      return undefined;
    }
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastStamp = new Date(now).toISOString();
    }
    if (r.path !== lastPath) {
      lastPath = r.path;
      pathJson = str(r.path);
    }
    if (r.method !== lastMethod) {
      lastMethod = r.method;
      methodJson = str(r.method);
    }
    const id = r.requestId;
    let line = `${head}${lastStamp}${base},"request_id":${printsAsIs(id) ? `"${id}"` : str(id)},"method":${methodJson},"path":${pathJson},"status":${r.status},"latency_ms":${latency},"operation":"${r.operation}"`;
    if (r.model) {
      if (r.model.name !== lastName || r.model.version !== lastVersion) {
        lastName = r.model.name;
        lastVersion = r.model.version;
        modelJson = `,"model":${str(lastName)},"model_version":${str(lastVersion)}`;
      }
      line += modelJson;
    }
    if (r.batchSize !== undefined) line += `,"batch_size":${r.batchSize}`;
    if (r.error !== undefined) line += `,"error_message":${str(r.error)}`;
    return `${line}}`;
  };
}

/**
 * Whether JSON.stringify prints `text` as it is between its quotes: printable ASCII without `"` or `\\` (what a
 * request id is, ours or a sane one the caller sent). A loop over its characters costs a tenth of stringifying it.
 */
function printsAsIs(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}
