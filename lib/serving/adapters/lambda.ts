/**
 * The Lambda adapter: serves the predictor app (any fetch-style app) to the HTTP events AWS Lambda receives:
 * Lambda Function URLs and API Gateway HTTP APIs (payload format 2.0) and API Gateway REST APIs (payload format
 * 1.0, proxy integration). The app gets a `LiteRequest` and the event as its `RequestSource`; its `PlainResponse`
 * becomes the result Lambda expects for that event. No fetch `Request`, `Response` or `Headers` is built: on
 * Node they load undici on first use, about 40 ms of a cold start (see `exchange.ts`).
 *
 * An event of any other shape (a direct `aws lambda invoke`, a queue message) is answered with a 400 result
 * that says which events the function takes, rather than a crash.
 */
import { InferenceRequestError } from '../../errors.ts';
import {
  type AnswerLimit,
  type FetchHandler,
  faultAnswer,
  LiteRequest,
  type PlainResponse,
  plainAnswer,
  plainError,
  REQUEST_SOURCE,
  type RequestSource,
  tooLarge,
} from '../exchange.ts';

/** Function URL and HTTP API request (payload format 2.0): the fields the adapter reads. */
export interface HttpEventV2 {
  readonly version: '2.0';
  readonly rawPath: string;
  readonly rawQueryString?: string;
  readonly headers?: Readonly<Record<string, string | undefined>> | null;
  readonly cookies?: readonly string[] | null;
  readonly requestContext: {
    readonly domainName?: string;
    /** `$default` for Function URLs and an HTTP API's default stage; a named stage also leads `rawPath`. */
    readonly stage?: string;
    /** API Gateway's (or the Function URL's) id of the request: the answer's request id unless the caller sent one. */
    readonly requestId?: string;
    readonly http: { readonly method: string };
  };
  readonly body?: string | null;
  readonly isBase64Encoded?: boolean;
}

/** REST API proxy request (payload format 1.0): the fields the adapter reads. */
export interface HttpEventV1 {
  readonly version?: '1.0';
  readonly httpMethod: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string | undefined>> | null;
  readonly multiValueHeaders?: Readonly<Record<string, readonly string[] | undefined>> | null;
  readonly queryStringParameters?: Readonly<Record<string, string | undefined>> | null;
  readonly multiValueQueryStringParameters?: Readonly<Record<string, readonly string[] | undefined>> | null;
  readonly requestContext?: { readonly domainName?: string; readonly requestId?: string } | null;
  readonly body?: string | null;
  readonly isBase64Encoded?: boolean;
}

export type LambdaHttpEvent = HttpEventV2 | HttpEventV1;

/**
 * What the handler returns: the proxy result of either payload format (the app never sets cookies). Headers come
 * as `multiValueHeaders` when the request came with them (a REST API, an ALB target group with multi-value
 * headers on, which takes only those), as `headers` otherwise.
 */
export interface LambdaHttpResult {
  statusCode: number;
  headers?: Record<string, string>;
  multiValueHeaders?: Record<string, string[]>;
  body: string;
  isBase64Encoded: false;
}

export interface LambdaAdapterOptions {
  /**
   * A path in front of the routes that the function does not see past: the base path of a custom domain's API
   * mapping (`/ml` when https://api.example.com/ml/v2/health/ready reaches the function as `/ml/v2/health/ready`).
   * Removed from a request path that starts with it, except on API Gateway's own execute-api host (where there is
   * no base path); other paths are routed as they are. An HTTP API's named stage (`/prod/v2/...` on its
   * execute-api URL) is removed without it.
   * @default - none
   */
  readonly basePath?: string;
}

/** Lambda's limit on a synchronous invocation's response payload: the JSON of the result, body included. */
export const LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024;
/** An Application Load Balancer takes at most 1 MB of response JSON from a Lambda target. */
export const ALB_RESPONSE_BYTES = 1_000_000;
/** What a result needs besides its body: status, headers (the request id is at most 128 characters), flags. */
const RESULT_ENVELOPE_BYTES = 1024;

/**
 * The largest answer body a result of `responseBytes` can carry, measured as the result carries it (a JSON string:
 * quotes and backslashes escaped, control characters as \u escapes): the `answerLimit` of an event's request.
 */
export function lambdaAnswerLimit(responseBytes: number): AnswerLimit {
  const bytes = responseBytes - RESULT_ENVELOPE_BYTES;
  return {
    bytes,
    size(body: string): number {
      // At most 6 bytes per UTF-16 unit (a \u escape): a body short enough fits however it is escaped.
      if (body.length * 6 <= bytes) return body.length;
      return Buffer.byteLength(JSON.stringify(body)) - 2;
    },
  };
}
const LAMBDA_ANSWER_LIMIT = lambdaAnswerLimit(LAMBDA_RESPONSE_BYTES);
const ALB_ANSWER_LIMIT = lambdaAnswerLimit(ALB_RESPONSE_BYTES);

/** Serves one event through `app`; never throws (a malformed event is a 400 result, a fault a 500). */
export async function handleLambdaEvent(
  app: FetchHandler,
  event: unknown,
  options: LambdaAdapterOptions = {},
): Promise<LambdaHttpResult> {
  let request: ReturnType<typeof eventRequest>;
  try {
    request = eventRequest(event, options.basePath ? normalBasePath(options.basePath) : undefined);
  } catch {
    request = 'malformed HTTP event: its headers, query or body are not what AWS sends';
  }
  if (typeof request === 'string') {
    // No request to log: say it on stderr (CloudWatch), or a wrongly wired trigger would go unnoticed.
    const keys = isObject(event) ? Object.keys(event).slice(0, 12).join(', ').slice(0, 300) : typeof event;
    const answer = plainError(400, request);
    process.stderr.write(
      `maap: request ${answer.headers['x-request-id']} answered 400: ${request} (the event: ${keys || 'empty'})\n`,
    );
    return result(answer, false, false);
  }
  let answer: PlainResponse;
  try {
    answer = await plainAnswer(await app.fetch(request.lite.asRequest(), request.source));
  } catch (err) {
    answer = faultAnswer(err);
  }
  return result(answer, request.lite.method === 'HEAD', request.multiValue);
}

function result(answer: PlainResponse, head: boolean, multiValue: boolean): LambdaHttpResult {
  const body = head ? '' : answer.body;
  if (!multiValue)
    return { statusCode: answer.status, headers: answer.headers, body, isBase64Encoded: false };
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(answer.headers)) multiValueHeaders[name] = [value];
  return { statusCode: answer.status, multiValueHeaders, body, isBase64Encoded: false };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** `ml/` or `/ml` as `/ml`; `/` or an empty path as none. */
export function normalBasePath(path: string): string | undefined {
  const trimmed = path.trim().replace(/\/+$/, '');
  if (trimmed === '') return undefined;
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}

/**
 * Whether a request came to API Gateway's own execute-api host (true), another host (false: a custom domain, a
 * Function URL, maybe behind CloudFront), or the event does not say (undefined). A base path is removed only off
 * the execute-api host: there the path is the one API Gateway matched its routes (and their authorizers) against,
 * and a route reached under the base path must not be served as another.
 */
function gatewayHost(domainName: unknown): boolean | undefined {
  if (typeof domainName !== 'string') return undefined;
  return /\.execute-api\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$/.test(domainName);
}

/** `path` without the base path, except on the execute-api host (see `gatewayHost`). */
function pastBasePath(path: string, onGateway: boolean | undefined, basePath: string | undefined): string {
  return onGateway === true ? path : withoutPrefix(path, basePath);
}

/** `path` without the leading `prefix` segment(s), when it starts with them. */
function withoutPrefix(path: string, prefix: string | undefined): string {
  if (prefix === undefined || !path.startsWith(prefix)) return path;
  const rest = path.slice(prefix.length);
  return rest === '' ? '/' : rest.startsWith('/') ? rest : path;
}

/** The request an event carries, or why it is not an HTTP event this adapter serves. */
function eventRequest(
  event: unknown,
  basePath?: string,
): { lite: LiteRequest; source: EventRequestSource; multiValue: boolean } | string {
  const unknownEvent =
    'not an HTTP event: the predictor takes Lambda Function URL, API Gateway HTTP API (payload 2.0) and REST API (payload 1.0) events';
  if (!isObject(event)) return unknownEvent;
  if (event.version === '2.0') {
    const e = event as unknown as HttpEventV2;
    const method = e.requestContext?.http?.method;
    if (typeof method !== 'string' || typeof e.rawPath !== 'string') return unknownEvent;
    const headers = lowerCased(e.headers);
    if (e.cookies?.length) headers.cookie = e.cookies.join('; ');
    withRequestId(headers, e.requestContext.requestId);
    const source = new EventRequestSource(headers, e.body, e.isBase64Encoded === true, LAMBDA_ANSWER_LIMIT);
    const query = e.rawQueryString ? `?${e.rawQueryString}` : '';
    // On its execute-api host, an HTTP API serves a named stage under /<stage> and leaves that segment in rawPath
    // (the default stage, `$default`, and Function URLs have none; a custom domain maps a stage without it).
    const stage = e.requestContext.stage;
    const onGateway = gatewayHost(e.requestContext.domainName);
    const staged =
      stage && stage !== '$default' && onGateway !== false
        ? withoutPrefix(e.rawPath, `/${stage}`)
        : e.rawPath;
    const path = pastBasePath(staged, onGateway, basePath);
    // A Function URL passes the path as it came; an HTTP API, decoded.
    const decoded = !FUNCTION_URL_HOST.test(String(e.requestContext.domainName ?? ''));
    return {
      lite: new LiteRequest(method, targetOf(path, query, decoded), source, ORIGIN),
      source,
      multiValue: false,
    };
  }
  if (typeof event.httpMethod === 'string' && typeof event.path === 'string') {
    const e = event as unknown as HttpEventV1;
    const headers = lowerCased(e.headers);
    if (e.multiValueHeaders) {
      for (const [name, values] of Object.entries(e.multiValueHeaders)) {
        if (values?.length) headers[name.toLowerCase()] = values.join(', ');
      }
    }
    withRequestId(headers, e.requestContext?.requestId);
    const behindAlb = isObject(e.requestContext) && 'elb' in e.requestContext;
    const source = new EventRequestSource(
      headers,
      e.body,
      e.isBase64Encoded === true,
      behindAlb ? ALB_ANSWER_LIMIT : LAMBDA_ANSWER_LIMIT,
    );
    return {
      // A REST API's `path` has no stage (its resource path), but a custom domain's base path stays in it.
      lite: new LiteRequest(
        e.httpMethod,
        targetOf(
          pastBasePath(e.path, gatewayHost(e.requestContext?.domainName), basePath),
          queryV1(e),
          // An HTTP API's payload format 1.0 (which says `version: '1.0'`) passes the path decoded; a REST API (no
          // version) and a load balancer, as it came.
          e.version === '1.0',
        ),
        source,
        ORIGIN,
      ),
      source,
      multiValue: isObject(e.multiValueHeaders),
    };
  }
  return unknownEvent;
}

/**
 * Without an `x-request-id` from the caller, the answer carries API Gateway's id of the request (the one its access
 * logs show), so that the two can be matched; the app still replaces an id it does not find sane.
 */
function withRequestId(headers: Record<string, string>, requestId: unknown): void {
  if (headers['x-request-id'] === undefined && typeof requestId === 'string')
    headers['x-request-id'] = requestId;
}

function lowerCased(
  headers: Readonly<Record<string, string | undefined>> | null | undefined,
): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  if (headers)
    for (const [name, value] of Object.entries(headers))
      if (value !== undefined) out[name.toLowerCase()] = value;
  return out;
}

/** The origin of a request's URL: fixed, the Host header plays no part in routing. */
const ORIGIN = 'https://localhost';

/** What cannot stand as it is in a percent-encoded path (RFC 3986 `pchar` and `/`): `?`, `#`, spaces, non-ASCII, a `%` that starts no escape. */
const NOT_IN_ENCODED_PATH = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]|%(?![0-9a-fA-F]{2})/gu;
/** The same in a decoded path, where every `%` is a percent sign. */
const NOT_IN_DECODED_PATH = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/]/gu;
const FUNCTION_URL_HOST = /\.lambda-url\.[a-z0-9-]+\.on\.aws$/;

/**
 * The request target hono routes on: the path (made absolute), encoded, and the query. An HTTP API passes the path
 * already decoded (`decoded`): it is encoded again, `%` included, so that a `?` or `#` that was `%3F` or `%23` does
 * not split it and a `%41` the client sent as `%2541` is not decoded twice. Otherwise (REST APIs, Function URLs,
 * load balancers pass it as it came) only what cannot stand in an encoded path is encoded; an encoded path is
 * unchanged. A lone surrogate becomes U+FFFD.
 */
function targetOf(path: string, query: string, decoded = false): string {
  const pattern = decoded ? NOT_IN_DECODED_PATH : NOT_IN_ENCODED_PATH;
  pattern.lastIndex = 0;
  const safe = pattern.test(path)
    ? path.replace(/\p{Cs}/gu, '\uFFFD').replace(pattern, encodeURIComponent)
    : path;
  return `${safe.startsWith('/') ? safe : `/${safe}`}${query}`;
}

function queryV1(e: HttpEventV1): string {
  const params = new URLSearchParams();
  if (e.multiValueQueryStringParameters) {
    for (const [k, values] of Object.entries(e.multiValueQueryStringParameters))
      for (const v of values ?? []) params.append(k, v);
  } else if (e.queryStringParameters) {
    for (const [k, v] of Object.entries(e.queryStringParameters)) if (v !== undefined) params.append(k, v);
  }
  const query = params.toString();
  return query ? `?${query}` : '';
}

/** An event as the app's `RequestSource`: headers already merged and lower-cased, the body a string. */
class EventRequestSource implements RequestSource {
  readonly [REQUEST_SOURCE] = true as const;

  constructor(
    private readonly headers: Record<string, string>,
    private readonly rawBody: string | null | undefined,
    private readonly base64: boolean,
    readonly answerLimit: AnswerLimit,
  ) {}

  header(name: string): string | undefined {
    return this.headers[name];
  }

  headerEntries(): Iterable<[string, string]> {
    return Object.entries(this.headers);
  }

  async body(limit: number): Promise<Uint8Array> {
    const raw = this.rawBody ?? '';
    // Base64 takes 4 characters for 3 bytes; text at most 4 bytes a character: refuse before decoding when sure.
    if ((this.base64 ? Math.floor((raw.length * 3) / 4) - 2 : raw.length) > limit) throw tooLarge(limit);
    if (this.base64 && !/^[A-Za-z0-9+/]*={0,2}$/.test(raw)) {
      throw new InferenceRequestError('the request body is marked base64-encoded but is not valid base64');
    }
    const bytes = Buffer.from(raw, this.base64 ? 'base64' : 'utf8');
    if (bytes.length > limit) throw tooLarge(limit);
    return bytes;
  }
}
