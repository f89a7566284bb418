/**
 * A light S3 reader for cold starts: one SigV4-signed GET (or HEAD) over `node:http(s)`, the body streamed as a
 * Node Readable. Loading the full AWS SDK costs >100 ms of init on Lambda; reading the one object a predictor
 * serves needs none of it. Signing is SigV4 for these two requests only (`signRequest`, checked against the AWS
 * SDK's signer in the tests); credentials, region and endpoint come from the environment Lambda sets
 * (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`) or from the endpoint variables
 * maap's registry honours.
 */
import { createHash, createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { MaapError, NotFoundError, RegistryError, UsageError } from '../errors.ts';

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface S3GetConfig {
  readonly region: string;
  readonly credentials: S3Credentials;
  /** An S3-compatible endpoint (`http://127.0.0.1:4568`); addressed path-style. Default: AWS S3 in `region`. */
  readonly endpoint?: string;
  /** Socket inactivity timeout. @default 30 000 ms */
  readonly timeoutMs?: number;
  /** Tries for 5xx answers and connection failures before any body byte arrived. @default 3 */
  readonly attempts?: number;
  /**
   * Longest wait for S3's answer (status and headers), from the first try, over every try and the pauses between
   * them; the body's transfer is not bounded by it (only by `timeoutMs` of inactivity). A Lambda init must end
   * within 10 s, and an S3 that never answers (a VPC without a route to it) would otherwise hold it for
   * `attempts` × `timeoutMs`.
   * @default - no bound but `timeoutMs` per try
   */
  readonly answerWithinMs?: number;
  /**
   * Called once, when the first try's request has gone out: its connection established (and, over https, the TLS
   * handshake done) and the request handed to the system; or when that try failed first.
   */
  readonly onSent?: () => void;
}

export interface S3Object {
  /** The object's bytes, streamed. Emits a RegistryError if the connection breaks midway. */
  readonly body: Readable;
  /** `Content-Length`, when S3 sent one. */
  readonly size?: number;
  readonly etag?: string;
}

/** Reads the S3 settings from the environment; throws UsageError naming what is missing. */
export function s3ConfigFromEnv(env: NodeJS.ProcessEnv = process.env): S3GetConfig {
  const accessKeyId = env.AWS_ACCESS_KEY_ID?.trim();
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY?.trim();
  if (!accessKeyId || !secretAccessKey) {
    throw new UsageError(
      'no AWS credentials in the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (Lambda sets them from the function role)',
    );
  }
  const sessionToken = env.AWS_SESSION_TOKEN?.trim();
  const endpoint = [env.MAAP_S3_ENDPOINT, env.AWS_ENDPOINT_URL_S3, env.AWS_ENDPOINT_URL]
    .map((v) => v?.trim())
    .find((v) => v);
  return {
    region: env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || 'us-east-1',
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
    ...(endpoint ? { endpoint } : {}),
  };
}

/** Streams `s3://bucket/key`. 404 → NotFoundError; 403, wrong region, 5xx, network → RegistryError. */
export async function s3Get(bucket: string, key: string, config: S3GetConfig): Promise<S3Object> {
  const uri = `s3://${bucket}/${key}`;
  const res = await send('GET', bucket, key, config);
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  let received = 0;
  res.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  res.once('error', (err) => {
    body.destroy(
      new RegistryError(`reading ${uri} failed after ${received} bytes: ${err.message}`, { cause: err }),
    );
  });
  // A consumer that stops early (a refused package) must not leave the connection open.
  body.once('close', () => {
    if (!res.complete) res.destroy();
  });
  res.pipe(body);
  const length = Number(res.headers['content-length']);
  return {
    body,
    ...(Number.isFinite(length) ? { size: length } : {}),
    ...(typeof res.headers.etag === 'string' ? { etag: res.headers.etag } : {}),
  };
}

/** Whether `s3://bucket/key` exists (HEAD), and its size. */
export async function s3Head(
  bucket: string,
  key: string,
  config: S3GetConfig,
): Promise<{ size: number; mtime: Date } | undefined> {
  try {
    const res = await send('HEAD', bucket, key, config);
    res.resume();
    const modified = res.headers['last-modified'];
    return { size: Number(res.headers['content-length'] ?? 0), mtime: new Date(modified ?? 0) };
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Where a request for `bucket/key` goes: virtual-hosted on AWS, path-style on a custom endpoint. */
export function s3Url(bucket: string, key: string, config: Pick<S3GetConfig, 'region' | 'endpoint'>): URL {
  const path = key.split('/').map(encodeRfc3986).join('/');
  if (config.endpoint) {
    const base = new URL(config.endpoint);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new UsageError(`invalid S3 endpoint "${config.endpoint}": expected http(s)://host[:port]`);
    }
    return new URL(`${base.origin}${base.pathname.replace(/\/+$/, '')}/${bucket}/${path}`);
  }
  // The regions of AWS China (cn-north-1, cn-northwest-1) are under their own domain.
  const host = `s3.${config.region}.${config.region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com'}`;
  // Buckets with dots break the TLS wildcard of virtual-hosted names: address them path-style.
  return bucket.includes('.')
    ? new URL(`https://${host}/${bucket}/${path}`)
    : new URL(`https://${bucket}.${host}/${path}`);
}

async function send(method: 'GET' | 'HEAD', bucket: string, key: string, config: S3GetConfig) {
  const uri = `s3://${bucket}/${key}`;
  const attempts = Math.max(1, config.attempts ?? 3);
  const bound = config.answerWithinMs;
  const deadline = bound === undefined ? Number.POSITIVE_INFINITY : Date.now() + bound;
  const unreachable = (err: unknown, tries: number): RegistryError => {
    const where = config.endpoint ?? `S3 in ${config.region}`;
    const why =
      err instanceof DeadlineError ? `no answer within ${bound} ms (${tries} tries)` : (err as Error).message;
    return new RegistryError(`cannot reach ${where} to read ${uri}: ${why}`, { cause: err });
  };
  for (let attempt = 1; ; attempt++) {
    let pause = 100 * 2 ** (attempt - 1);
    try {
      const sent = attempt === 1 ? config.onSent : undefined;
      const res = await request(method, s3Url(bucket, key, config), config, deadline, sent);
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) return res;
      const error = await statusError(res, uri, config);
      if (status < 500 || attempt >= attempts || Date.now() + pause >= deadline) throw error;
    } catch (err) {
      if (err instanceof MaapError) throw err;
      if (err instanceof DeadlineError || attempt >= attempts) throw unreachable(err, attempt);
      if (Date.now() + pause >= deadline) throw unreachable(new DeadlineError(), attempt);
    }
    pause = Math.min(pause, deadline - Date.now());
    await new Promise((wake) => setTimeout(wake, pause));
  }
}

/** The `answerWithinMs` bound ran out while a try was waiting. */
class DeadlineError extends Error {}

/** What a signed request carries over the wire. */
export interface SignedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
}

/**
 * Signs a request for `url` (SigV4, service s3, unsigned payload: S3 checks the body against Content-MD5 or
 * the checksum headers, not the signature). `now` fixes the signing time (tests).
 *
 * Only what a GET or HEAD of one object needs: no query string, no body, and a path already encoded the way S3
 * signs it (RFC 3986 per segment, see `s3Url`; S3's canonical path is not encoded twice). A general signer
 * (aws4 before) cost ~3M more instructions of a Lambda cold start (~1 ms), in code compiled for that one call.
 */
export function signRequest(method: string, url: URL, config: S3GetConfig, now = new Date()): SignedRequest {
  const { accessKeyId, secretAccessKey, sessionToken } = config.credentials;
  const time = now.toISOString().replace(/[:-]|\.\d{3}/g, ''); // 20260312T190358Z
  const date = time.slice(0, 8);
  const signed: [string, string][] = [
    ['host', url.host],
    ['x-amz-content-sha256', 'UNSIGNED-PAYLOAD'],
    ['x-amz-date', time],
  ];
  if (sessionToken) signed.push(['x-amz-security-token', sessionToken]);
  const names = signed.map(([name]) => name).join(';'); // already in order
  const canonical = [
    method,
    url.pathname,
    '', // no query
    ...signed.map(([name, value]) => `${name}:${value.trim().replace(/\s+/g, ' ')}`),
    '',
    names,
    'UNSIGNED-PAYLOAD',
  ].join('\n');
  const scope = `${date}/${config.region}/s3/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${time}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
  let key: Buffer = createHmac('sha256', `AWS4${secretAccessKey}`).update(date).digest();
  for (const part of [config.region, 's3', 'aws4_request'])
    key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return {
    method,
    path: url.pathname,
    headers: {
      Host: url.host,
      'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD',
      'X-Amz-Date': time,
      ...(sessionToken ? { 'X-Amz-Security-Token': sessionToken } : {}),
      Authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${names}, Signature=${signature}`,
    },
  };
}

/**
 * A built-in module through `process.getBuiltinModule` where Node has it (20.16+, 22.3+), else imported. An
 * `import()` makes Node build the module's ESM namespace, which reads every export: on Node 22 (Lambda's
 * nodejs22.x), node:http's lazy WebSocket exports then load undici, 75 more modules for one GET (a sixth of the
 * Lambda bundle's cold-start instructions on its main thread, measured on Node 22.23).
 */
async function builtin<Id extends keyof HttpModules>(id: Id): Promise<HttpModules[Id]> {
  const loaded = process.getBuiltinModule?.(id) as HttpModules[Id] | undefined;
  return loaded ?? ((await import(id)) as HttpModules[Id]);
}
interface HttpModules {
  'node:http': typeof import('node:http');
  'node:https': typeof import('node:https');
}

async function request(
  method: string,
  url: URL,
  config: S3GetConfig,
  deadline = Number.POSITIVE_INFINITY,
  onSent?: () => void,
): Promise<IncomingMessage> {
  const https = url.protocol === 'https:';
  const { request: open } = https ? await builtin('node:https') : await builtin('node:http');
  const timeout = config.timeoutMs ?? 30_000;
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = open({
      ...signRequest(method, url, config),
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port || (https ? 443 : 80),
      agent: false,
      timeout,
    });
    const timer = Number.isFinite(deadline)
      ? setTimeout(() => req.destroy(new DeadlineError()), Math.max(0, deadline - Date.now()))
      : undefined;
    let sent = onSent;
    const markSent = (): void => {
      const callback = sent;
      sent = undefined;
      callback?.();
    };
    // 'finish': the request's bytes are handed to the system, so after the connection and the TLS handshake (the
    // socket's own 'secureConnect' comes before Node writes the handshake's end and the request).
    if (sent) req.once('finish', markSent);
    req.once('response', (res) => {
      clearTimeout(timer);
      markSent();
      resolve(res);
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      markSent();
      reject(err);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer for ${timeout} ms`)));
    req.end();
  });
}

/** Turns a non-2xx answer into a maap error with S3's code and a hint a person can act on. */
async function statusError(res: IncomingMessage, uri: string, config: S3GetConfig): Promise<MaapError> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (size < 16 * 1024) chunks.push(chunk);
    size += chunk.length;
  }
  const xml = Buffer.concat(chunks).toString('utf8');
  const code = /<Code>([^<]*)<\/Code>/.exec(xml)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(xml)?.[1];
  const status = res.statusCode ?? 0;
  const detail = `S3 answered ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`;
  if (status === 404) {
    const what = code === 'NoSuchBucket' ? `the bucket of ${uri} does not exist` : `${uri} not found`;
    return new NotFoundError(`${what} (${detail})`);
  }
  if (status === 403) {
    const hint =
      code === 'ExpiredToken' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch'
        ? 'the credentials in the environment are not valid for this endpoint'
        : `the function's role needs s3:GetObject on ${uri}`;
    return new RegistryError(`access denied reading ${uri}: ${hint} (${detail})`);
  }
  if (
    status === 301 ||
    status === 307 ||
    code === 'PermanentRedirect' ||
    code === 'AuthorizationHeaderMalformed'
  ) {
    const region = res.headers['x-amz-bucket-region'];
    const where = typeof region === 'string' ? `it is in ${region}` : 'it is in another region';
    return new RegistryError(
      `cannot read ${uri} from ${config.region}: ${where}; set AWS_REGION (${detail})`,
    );
  }
  return new RegistryError(`cannot read ${uri}: ${detail}`);
}

/** RFC 3986 encoding of one path segment (what SigV4 signs for S3). */
function encodeRfc3986(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}
