/**
 * The Node adapter: serves the predictor app (any fetch-style app, in fact) to `node:http` requests. The app gets
 * a `LiteRequest` and the Node request itself as its `RequestSource` (headers read from the raw header list, the
 * body from the stream), and answers a `PlainResponse`, written with one `writeHead` and one `end`: with a string
 * body, Node sends the head and the body in one write. A real `Response` (hono builds one for HEAD) is read
 * into the same shape.
 *
 * A request body left unread (an early 4xx, a body over the limit) is read on and dropped, up to `drainBytes`,
 * and the connection carries on: a client still sending reads the answer, where closing at once would reset the
 * connection under it (an EPIPE instead of the 413). A body declared larger than that is answered with
 * `Connection: close`, and a client that sends more than that anyway is cut off.
 *
 * The request source also tells the app, as it logs a request, whether its answer can still be written (`gone`):
 * a client that left is logged 499; a request the server answered itself (see `answeredByServer`) is not logged
 * by the app at all; a connection the server cut itself (`closedByServer`, a shutdown) changes nothing.
 */
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { RequestCutOffError } from '../../errors.ts';
import {
  type FetchHandler,
  faultAnswer,
  LiteRequest,
  PlainResponse,
  plainAnswer,
  REQUEST_SOURCE,
  type RequestSource,
  tooLarge,
} from '../exchange.ts';

/** See `NodeListenerOptions.drainBytes`. */
export const DRAIN_BYTES = 16 * 1024 * 1024;

export interface NodeListenerOptions {
  /**
   * Asked as each answer is written: true makes it carry `Connection: close`, so that the client does not send
   * another request on a connection about to end (a server shutting down answers its in-flight requests so).
   * @default - only an answer that leaves more request body unread than `drainBytes` closes its connection
   */
  readonly closeConnection?: () => boolean;
  /**
   * How much of a request body left unread when its answer is written (an early 4xx, a body over the limit) is
   * still read and dropped, the connection carrying on: a client still sending then reads the answer, where
   * closing at once would reset the connection under it (EPIPE instead of the 413). A body declared larger is
   * answered with `Connection: close`; a client that sends more than this anyway is cut off.
   * @default 16 MiB
   */
  readonly drainBytes?: number;
}

/** The `node:http` request listener serving `app`. */
export function nodeListener(
  app: FetchHandler,
  options: NodeListenerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const fetch = app.fetch.bind(app);
  const closing = options.closeConnection ?? never;
  const drainBytes = options.drainBytes ?? DRAIN_BYTES;
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    const exchange = new NodeExchange(req, res, new NodeRequestSource(req, drainBytes, closing), closing);
    let answer: Response | Promise<Response>;
    try {
      answer = fetch(
        new LiteRequest(req.method ?? 'GET', targetOf(req), exchange.source).asRequest(),
        exchange.source,
      );
    } catch (err) {
      exchange.failed(err);
      return;
    }
    if (answer instanceof Promise) {
      answer.then(
        (a) => exchange.done(a),
        (err) => exchange.failed(err),
      );
    } else exchange.done(answer);
  };
  // Requests waiting for their turn, per connection (see below).
  const waiting = new WeakMap<object, number>();
  return (req, res) => {
    if (res.socket !== null) {
      serve(req, res);
      return;
    }
    // A request pipelined behind one still being answered (Node queues its response) is taken up when its turn
    // comes: if the answer before it ends the connection (a server shutting down), its turn never comes, and it is
    // never run, as RFC 9112 (9.6) wants, rather than run, logged, and its answer lost. A waiting request has no
    // answer yet, so nothing holds Node back from reading more of them: past MAX_PIPELINED, the connection is cut.
    const socket = req.socket;
    const queued = (waiting.get(socket) ?? 0) + 1;
    if (queued > MAX_PIPELINED) {
      closedByServer(socket);
      socket.destroy();
      return;
    }
    waiting.set(socket, queued);
    res.once('socket', () => {
      waiting.set(socket, (waiting.get(socket) ?? 1) - 1);
      serve(req, res);
    });
  };
}

/**
 * One request being answered: what writing its answer, or the last-resort answer to a fault, needs. Methods rather
 * than named closures made per request: under tsx (how `maap serve` runs), esbuild's keepNames defines the `name` of
 * each named closure as it is made (an Object.defineProperty per closure, per request), ~2% of the instructions of a
 * small model's request on the Node server. The anonymous arrows handed to `then` get no name.
 */
class NodeExchange {
  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly source: NodeRequestSource,
    readonly closing: () => boolean,
  ) {}

  done(a: Response | PlainResponse): void {
    if (!(a instanceof PlainResponse)) {
      plainAnswer(a).then(
        (plain) => this.done(plain),
        (err) => this.failed(err),
      );
      return;
    }
    try {
      send(this.req, this.res, this.source, a, this.closing());
    } catch (err) {
      this.failed(err); // writeHead refused a header or status the app made
    }
  }

  failed(err: unknown): void {
    const source = this.source;
    const unread = source.leavesUnreadBody(); // first: it starts dropping what is left of the body
    const close = this.closing() || unread;
    if (close && source.rest !== undefined) source.rest.then(() => fail(this.res, err, close));
    else fail(this.res, err, close);
  }
}

/** Requests one connection may have waiting behind the one being answered. */
export const MAX_PIPELINED = 32;

/** Requests the server answered itself while the app had them (see `answeredByServer`). */
const answeredElsewhere = new WeakSet<IncomingMessage>();
/** Connections the server ended or cut itself (see `closedByServer`). */
const serverClosed = new WeakSet<Duplex>();

/**
 * Marks `req`, which the app may have, as answered by the server itself (Node's parser gave up on its body, or it
 * did not arrive in time; the server logs its own answer), or as never to be answered (its connection ends before
 * its turn): the app does not log it.
 */
export function answeredByServer(req: IncomingMessage): void {
  answeredElsewhere.add(req);
}

/** Requests whose answer the app has made and that waits for the rest of their body to be dropped. */
const waitingAnswers = new WeakSet<IncomingMessage>();

/** Whether the app has answered `req` and the answer waits to be written (see `send`). */
export function answerPending(req: IncomingMessage): boolean {
  return waitingAnswers.has(req);
}

/**
 * Marks `socket` as ended or cut by the server itself (a request it refused, a client that sent too much): the
 * requests on it that lose their answers are not logged as left by their client (499).
 */
export function closedByServer(socket: Duplex): void {
  serverClosed.add(socket);
}

/** A request target that needs parsing: absolute-form, dot segments, backslashes, an encoded dot. */
const UNUSUAL_TARGET = /^[^/]|\/\.|\\|%2e/i;

function targetOf(req: IncomingMessage): string {
  return routedTarget(req.url ?? '/');
}

/**
 * The request target hono routes on (only its path and query matter). An origin-form target (`/v2/...`) is used as
 * it is; anything else (`http://host/v2/...`, `/a/../v2`) goes through the URL parser first, as a fetch Request
 * would have it.
 */
export function routedTarget(target: string): string {
  if (!UNUSUAL_TARGET.test(target)) return target;
  try {
    const url = new URL(target, 'http://localhost');
    return `${url.pathname}${url.search}`;
  } catch {
    return '/'; // no route: a 404
  }
}

const never = (): boolean => false;

function send(
  req: IncomingMessage,
  res: ServerResponse,
  source: NodeRequestSource,
  answer: PlainResponse,
  close: boolean,
): void {
  const headers = answer.headers;
  // A HEAD answer has no body to measure (hono answers HEAD with GET's headers and no body): no length then.
  if (req.method !== 'HEAD') headers['content-length'] = String(Buffer.byteLength(answer.body));
  const unread = source.leavesUnreadBody(); // first: it starts dropping what is left of the body
  const closes = close || unread;
  if (closes) headers.connection = 'close';
  // Ending the connection with body bytes unread would reset it under a client still sending (see `rest`).
  if (closes && source.rest !== undefined) {
    waitingAnswers.add(req);
    source.rest.then(() => {
      try {
        res.writeHead(answer.status, headers);
        res.end(answer.body);
      } catch (err) {
        fail(res, err, true); // writeHead refused a header or status the app made
      }
    });
    return;
  }
  res.writeHead(answer.status, headers);
  res.end(answer.body);
}

/** The last resort: the app threw past its own error handling (or its answer could not be written). */
function fail(res: ServerResponse, err: unknown, close: boolean): void {
  const answer = faultAnswer(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // The status text too: a writeHead that threw (a header refused) may already have set it for its own status.
  res.writeHead(answer.status, STATUS_CODES[answer.status] ?? 'Error', {
    ...answer.headers,
    'content-length': String(Buffer.byteLength(answer.body)),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(answer.body);
}

/** A Node request as the app's `RequestSource`. */
class NodeRequestSource implements RequestSource {
  readonly [REQUEST_SOURCE] = true as const;
  #dropped = 0;
  /**
   * Set once the rest of the body is being dropped (it went over the limit while read, or the answer left it
   * unread); settles when the body has ended or the connection closed. An answer that ends the connection (the
   * server shutting down) waits for it: a connection ended with bytes unread is reset under a client still
   * sending, and the answer lost (EPIPE). A client that asked for the connection to end is answered at once all
   * the same: it may be waiting for the answer before it sends.
   */
  rest: Promise<void> | undefined = undefined;

  constructor(
    readonly incoming: IncomingMessage,
    private readonly drainBytes: number,
    private readonly closing: () => boolean,
  ) {}

  gone(): 'client' | 'answered' | undefined {
    // A connection the client closed is destroyed; one it ended (FIN) is ended on our side too: not writable either
    // way. (A request the server answered itself, or never will, is on a connection the server ends.)
    const socket = this.incoming.socket;
    if (socket.writable) return undefined;
    if (answeredElsewhere.has(this.incoming)) return 'answered';
    return serverClosed.has(socket) || this.closing() ? undefined : 'client';
  }

  header(name: string): string | undefined {
    const raw = this.incoming.rawHeaders;
    let value: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (sameName(raw[i] as string, name))
        value = value === undefined ? raw[i + 1] : `${value}, ${raw[i + 1]}`;
    }
    return value;
  }

  *headerEntries(): Iterable<[string, string]> {
    const raw = this.incoming.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) yield [(raw[i] as string).toLowerCase(), raw[i + 1] as string];
  }

  body(limit: number): Promise<Uint8Array> {
    const incoming = this.incoming;
    if (incoming.readableEnded) return Promise.resolve(new Uint8Array(0));
    if (incoming.destroyed) return Promise.reject(cutOff());
    // Listeners as closures over the read: a property set on the IncomingMessage would give Node's own objects a
    // new hidden class, and Node's code that reads them would turn polymorphic.
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      incoming.on('data', (chunk: Buffer) => {
        if (settled) {
          if (this.rest !== undefined) this.drop(chunk.length); // over the limit: being dropped
          return;
        }
        size += chunk.length;
        if (size <= limit) chunks.push(chunk);
        else {
          settled = true;
          chunks.length = 0; // not held while the rest is dropped
          this.rest = this.ended(); // the rest is read and dropped, up to drainBytes
          this.drop(size - limit);
          reject(tooLarge(limit));
        }
      });
      incoming.on('end', () => {
        if (settled) return;
        settled = true;
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
      });
      incoming.on('close', () => {
        if (settled) return;
        settled = true;
        reject(cutOff());
      });
    });
  }

  /**
   * Whether answering now leaves a body unread that the connection must not carry on with: more of it declared than
   * `drainBytes`, or already dropped past it. Otherwise what is left is read and dropped from now on.
   */
  leavesUnreadBody(): boolean {
    const incoming = this.incoming;
    if (this.rest !== undefined) return this.#dropped > this.drainBytes;
    if (incoming.complete || incoming.readableEnded || incoming.destroyed) return false;
    if (incoming.listenerCount('data') > 0) return false; // being read by body(), which bounds it
    if (this.header('transfer-encoding') === undefined) {
      const declared = Number(this.header('content-length') ?? 0);
      if (!(declared <= this.drainBytes)) return true;
    }
    this.rest = this.ended();
    incoming.on('data', (chunk: Buffer) => this.drop(chunk.length));
    incoming.resume();
    return false;
  }

  private ended(): Promise<void> {
    return new Promise((resolve) => {
      this.incoming.once('end', resolve);
      this.incoming.once('close', resolve);
    });
  }

  /** Counts bytes dropped; past `drainBytes` the client is cut off (it was told to stop). */
  private drop(bytes: number): void {
    this.#dropped += bytes;
    if (this.#dropped > this.drainBytes && this.incoming.socket) {
      closedByServer(this.incoming.socket);
      this.incoming.socket.destroy();
    }
  }
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

function cutOff(): RequestCutOffError {
  return new RequestCutOffError('the request body was cut off: the client closed the connection');
}
