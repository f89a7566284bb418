/**
 * How a server adapter hands a request to the predictor app, and takes the answer back, without fetch objects.
 *
 * The app is a hono app: `app.fetch(request, env)`. Run on an edge runtime (or through `app.request` in a test),
 * it gets a real `Request` and answers real `Response`s. The Node server and the Lambda handler instead pass a
 * `LiteRequest` (just the method and the request target hono routes on) and, as hono's `env`, a `RequestSource`
 * the app reads headers and the body from; the app then answers `PlainResponse`s (status, header record, string
 * body), which the adapter writes out as they are. The answers are the same; only their envelope differs.
 *
 * Why: on Node, `Request`, `Response` and `Headers` live in undici, which loads on first use (about 40 ms of a
 * Lambda cold start here, with tls, http2 and zlib in tow), and building them costs microseconds per request on
 * a server whose whole budget per request is tens of microseconds.
 */
import { randomUUID } from 'node:crypto';
import { getPath } from 'hono/utils/url';
import { PayloadTooLargeError } from '../errors.ts';

/** What an adapter serves: hono's `app.fetch` signature. */
export interface FetchHandler {
  fetch(request: Request, env?: unknown): Response | Promise<Response>;
}

/**
 * A request a server answered itself: Node could not parse it (or, while the app was reading it, its body), its
 * headers were too large, it did not arrive in time, it had no Host header, it declared a body over the limit while
 * waiting for `100 Continue`, or it expected what the server does not do. The app logs and counts it as it does
 * its own answers (see `PredictorApp`).
 */
export interface Refusal {
  /** The `x-request-id` the answer carries. */
  readonly requestId: string;
  readonly status: number;
  /** The message the client received. */
  readonly error: string;
  /** The request's method, when its request line could be read. */
  readonly method?: string;
  /** The request target (path and query), when its request line could be read. */
  readonly target?: string;
}

/** Marks a `RequestSource` among hono `env` values (an edge platform passes its own bindings there). */
export const REQUEST_SOURCE: unique symbol = Symbol.for('maap.requestSource');

/** Where the app reads a request from when an adapter passes one (as hono's `env`). */
export interface RequestSource {
  readonly [REQUEST_SOURCE]: true;
  /** A request header as `Headers#get` answers it (repeated values joined with ", "); `name` in lower case. */
  header(name: string): string | undefined;
  /** Every request header as (lower-case name, value) pairs, for the rare caller that wants a `Headers`. */
  headerEntries(): Iterable<[string, string]>;
  /** The whole body; rejects with PayloadTooLargeError as soon as it is known to exceed `limit` bytes. */
  body(limit: number): Promise<Uint8Array>;
  /**
   * The largest inference answer this request's channel carries, if it has a limit: a bigger one is answered 413
   * (the Lambda adapter's: 6 MB for a Function URL or API Gateway, 1 MB behind a load balancer).
   */
  readonly answerLimit?: AnswerLimit;
  /**
   * Why the answer can no longer be written, asked as the request is logged: `client` when the client closed or
   * reset the connection (the request is logged with status 499, as nginx logs it), `answered` when the server
   * answered the request itself (the server logs that answer; the app does not log the request), undefined when it
   * can be written, or the server closed the connection for reasons of its own (a shutdown).
   */
  gone?(): 'client' | 'answered' | undefined;
}

/** The largest answer body a channel carries: `bytes`, as `size` measures a body the way the channel carries it. */
export interface AnswerLimit {
  readonly bytes: number;
  readonly size: (body: string) => number;
}

/** The `RequestSource` in hono's `env`, if an adapter passed one. */
export function requestSource(env: unknown): RequestSource | undefined {
  return typeof env === 'object' && env !== null && (env as Partial<RequestSource>)[REQUEST_SOURCE] === true
    ? (env as RequestSource)
    : undefined;
}

/**
 * What hono's dispatch reads of a request: its method and where it goes. `target` is the request target (path and
 * query, starting with `/`); `url` puts it under a fixed origin (only the path and query matter) and is built only
 * when something asks for it: the app routes on `path` (see `appPath`). `headers` builds a real `Headers` on first
 * use, for code that asks the request itself; the app reads headers and the body from the `RequestSource` instead.
 */
export class LiteRequest {
  #headers: Headers | undefined;
  constructor(
    readonly method: string,
    readonly target: string,
    private readonly source: RequestSource,
    private readonly origin = 'http://localhost',
  ) {
    if (target.charCodeAt(0) !== 47)
      throw new TypeError(`a request target starts with "/": got ${target.slice(0, 40)}`);
  }

  get url(): string {
    return this.origin + this.target;
  }

  /**
   * The path hono routes on: the target itself when it has no query, fragment or percent-escape (what clients
   * send), otherwise what hono's own `getPath` makes of the URL (it decodes escapes).
   */
  get path(): string {
    const target = this.target;
    for (let i = 0; i < target.length; i++) {
      const c = target.charCodeAt(i);
      if (c === 37 || c === 63 || c === 35) return getPath(this.asRequest()); // % ? #
    }
    return target;
  }

  get headers(): Headers {
    this.#headers ??= new Headers([...this.source.headerEntries()]);
    return this.#headers;
  }

  /** Typed as what `app.fetch` takes: hono reads only `method`, `url` and, on demand, `headers`. */
  asRequest(): Request {
    return this as unknown as Request;
  }
}

/** The app's `getPath`: a `LiteRequest`'s path without building its URL; hono's own for any other request. */
export function appPath(request: Request): string {
  return request instanceof LiteRequest ? request.path : getPath(request);
}

/** An answer for an adapter: the status, the headers (lower-case names) and the body, already a string. */
export class PlainResponse {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    readonly body: string,
  ) {}

  /** Typed as what a hono handler returns: hono passes the handler's answer through unchanged. */
  asResponse(): Response {
    return this as unknown as Response;
  }
}

/**
 * An adapter's answer whichever envelope the app used: a `PlainResponse` as it is, a real `Response` (hono builds
 * one for a HEAD request) read into one. The body is read whole: the app's answers are small JSON documents.
 */
export async function plainAnswer(answer: Response | PlainResponse): Promise<PlainResponse> {
  if (answer instanceof PlainResponse) return answer;
  const headers: Record<string, string> = {};
  answer.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return new PlainResponse(answer.status, headers, answer.body === null ? '' : await answer.text());
}

/** An adapter's own JSON error answer, for what the app does not answer itself (a request it cannot read). */
export function plainError(status: number, message: string, requestId: string = randomUUID()): PlainResponse {
  return new PlainResponse(
    status,
    { 'content-type': 'application/json', 'x-request-id': requestId },
    JSON.stringify({ error: message }),
  );
}

/** The last resort, when the app threw past its own error handling: logged with its stack, answered 500. */
export function faultAnswer(err: unknown): PlainResponse {
  const answer = plainError(500, 'internal server error');
  process.stderr.write(
    `maap: request ${answer.headers['x-request-id']} failed: ${(err as Error)?.stack ?? String(err)}\n`,
  );
  return answer;
}

export function tooLarge(limit: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`the request body is larger than the limit of ${limit} bytes`);
}
