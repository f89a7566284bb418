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
  const printed =
    own && output !== undefined && plainEnvironment() ? (logger as RequestLogger).printed() : undefined;
  const fast = printed && new FastLine(logger as RequestLogger, printed);
  return {
    logger,
    ...(output ? { flush: () => output.drain() } : {}),
    logRequest(record) {
      if (fast === undefined || record.status >= 500 || !fast.applies(record)) {
        logRequestThrough(logger, record);
        return;
      }
      const out = output as LineOutput;
      const most = fast.prepare(record);
      if (record.error !== undefined || !out.writeEncoded(most, fast.encode, record))
        out.write(fast.text(record));
    },
  };
}

/** Nothing in the environment changes powertools' plain line: no dev mode, UTC timestamps, no trace id. */
function plainEnvironment(env: NodeJS.ProcessEnv = process.env): boolean {
  return plainFormat(env) && !env._X_AMZN_TRACE_ID && !env.AWS_LAMBDA_MAX_CONCURRENCY;
}

/**
 * The INFO `request` line exactly as powertools' default formatter prints it (`{"level":"INFO","message":
 * "request","timestamp":...,"service":...,"sampling_rate":...,` then `requestLogFields` in their order), for a
 * record it `applies` to: not when powertools must print it (the logger is no longer plain, INFO is not logged, or a
 * field is empty or not finite, which powertools drops or prints as null).
 *
 * What repeats from line to line is kept as UTF-8 bytes, made again when it changes: the head up to the request id
 * (its timestamp changes every millisecond), the method, path and status, the operation and model. A line is then
 * written straight into the output's queue (`encode`): three copies, the request id and two numbers, instead of a
 * string concatenated, flattened and UTF-8 encoded per line (a hot loop here: 0.49 µs a line against 0.72; maap serve
 * under callgrind: ~3,000 fewer instructions a request). A line with an error message, or a request id that JSON
 * would escape, is built as a string (`text`).
 */
class FastLine {
  readonly #logger: RequestLogger;
  /** `","service":...,"sampling_rate":...` */
  readonly #base: string;
  /** NaN until the first line: any clock reading, 0 included, then makes the head. */
  #ms = Number.NaN;
  /** The line up to its request id: `{"level":"INFO",...,"timestamp":"<stamp>",...,"request_id":`. */
  #headText = '';
  /** `#headText` and the request id's opening quote. */
  #head: Buffer = Buffer.alloc(0);
  #method = '';
  #path = '';
  #status = 0;
  #methodJson = '""';
  #pathJson = '""';
  /** `,"method":...,"path":...,"status":...,"latency_ms":` */
  #callText = '';
  /** The request id's closing quote and `#callText`. */
  #call: Buffer = Buffer.alloc(0);
  #operation = '';
  #hasModel = false;
  #name = '';
  #version = '';
  /** `,"operation":"...","model":...,"model_version":...` (the model when there is one). */
  #tailText = '';
  #tail: Buffer = Buffer.alloc(0);

  constructor(logger: RequestLogger, printed: { service: string; samplingRate: number }) {
    this.#logger = logger;
    this.#base = `","service":${JSON.stringify(printed.service)},"sampling_rate":${JSON.stringify(printed.samplingRate)}`;
  }

  /** Whether this record's line is printed here (see the class comment). */
  applies(r: RequestRecord): boolean {
    const logger = this.#logger;
    if (!logger.plain || !logger.infoEnabled) return false;
    for (const _ in logger.getPersistentLogAttributes()) return false;
    return !(
      r.requestId === '' ||
      r.method === '' ||
      r.path === '' ||
      r.model?.name === '' ||
      r.model?.version === '' ||
      r.error === '' ||
      !Number.isFinite(r.status) ||
      !Number.isFinite(roundLatency(r.latencyMs)) ||
      (r.batchSize !== undefined && !Number.isFinite(r.batchSize))
    );
  }

  /**
   * Makes the kept parts current for `r`; returns the most bytes its line takes as `encode` writes it (every
   * character of the request id one byte: one that is not is left to `text`).
   */
  prepare(r: RequestRecord): number {
    const now = Date.now();
    if (now !== this.#ms) {
      this.#ms = now;
      this.#headText = `{"level":"INFO","message":"request","timestamp":"${new Date(now).toISOString()}${this.#base},"request_id":`;
      this.#head = Buffer.from(`${this.#headText}"`);
    }
    if (r.method !== this.#method || r.path !== this.#path || r.status !== this.#status) {
      if (r.method !== this.#method) this.#methodJson = JSON.stringify(r.method);
      if (r.path !== this.#path) this.#pathJson = JSON.stringify(r.path);
      this.#method = r.method;
      this.#path = r.path;
      this.#status = r.status;
      this.#callText = `,"method":${this.#methodJson},"path":${this.#pathJson},"status":${r.status},"latency_ms":`;
      this.#call = Buffer.from(`"${this.#callText}`);
    }
    const model = r.model;
    // By name and version, not by identity: a model unloaded is not kept alive here.
    if (
      r.operation !== this.#operation ||
      (model !== undefined) !== this.#hasModel ||
      (model !== undefined && (model.name !== this.#name || model.version !== this.#version))
    ) {
      this.#operation = r.operation;
      this.#hasModel = model !== undefined;
      this.#name = model?.name ?? '';
      this.#version = model?.version ?? '';
      const named = model
        ? `,"model":${JSON.stringify(model.name)},"model_version":${JSON.stringify(model.version)}`
        : '';
      this.#tailText = `,"operation":"${r.operation}"${named}`;
      this.#tail = Buffer.from(this.#tailText);
    }
    // A number prints in at most 25 characters (-0.0000012345678901234567, -1.2345678901234567e-300): 32 each.
    return this.#head.length + r.requestId.length + this.#call.length + 32 + this.#tail.length + 14 + 32 + 1;
  }

  /** Writes `r`'s line (without an error message) from `at` after `prepare(r)`; -1 for an id JSON would escape. */
  readonly encode = (buf: Buffer, at: number, r: RequestRecord): number => {
    let i = at;
    buf.set(this.#head, i);
    i += this.#head.length;
    const id = r.requestId;
    for (let k = 0; k < id.length; k++) {
      const c = id.charCodeAt(k);
      if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return -1;
      buf[i++] = c;
    }
    buf.set(this.#call, i);
    i += this.#call.length;
    i = ascii(buf, i, String(roundLatency(r.latencyMs)));
    buf.set(this.#tail, i);
    i += this.#tail.length;
    if (r.batchSize !== undefined) {
      i = ascii(buf, i, ',"batch_size":');
      i = ascii(buf, i, String(r.batchSize));
    }
    buf[i++] = 0x7d; // }
    return i;
  };

  /** `r`'s line as a string, after `prepare(r)`. */
  text(r: RequestRecord): string {
    let line = `${this.#headText}${JSON.stringify(r.requestId)}${this.#callText}${roundLatency(r.latencyMs)}${this.#tailText}`;
    if (r.batchSize !== undefined) line += `,"batch_size":${r.batchSize}`;
    if (r.error !== undefined) line += `,"error_message":${JSON.stringify(r.error)}`;
    return `${line}}`;
  }
}

/** Writes `text`, ASCII only (a number, a constant), into `buf` from `at`; returns the offset after it. */
function ascii(buf: Buffer, at: number, text: string): number {
  for (let k = 0; k < text.length; k++) buf[at + k] = text.charCodeAt(k);
  return at + text.length;
}
