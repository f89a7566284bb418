/**
 * The Node server adapter: serves a fetch-style app (the predictor's hono app) over HTTP with graceful shutdown.
 * On SIGTERM/SIGINT (or `shutdown()`): stop accepting connections, let in-flight requests finish (their responses
 * carry `Connection: close`), close idle keep-alive connections, force-close what is left after a timeout, write
 * out the app's buffered telemetry (`flushTelemetry`: the last log lines and metrics), run `onShutdown` (e.g.
 * release the model; given at most one more timeout), write out what it logged, then exit. A second signal during
 * shutdown kills the process at once.
 *
 * What Node would answer (or drop) itself, before the app sees a request (a request it cannot parse, headers too
 * large, a request too slow, an HTTP/1.1 request without Host, an Expect it does not meet, a body over the limit
 * announced with `Expect: 100-continue`) is answered here as the app answers errors (JSON, with a request id) and
 * handed to the app's `reportRefusal`, so that every answer is in the request log and the metrics once.
 */
import {
  createServer,
  IncomingMessage,
  maxHeaderSize,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { UsageError } from '../lib/errors.ts';
import {
  answeredByServer,
  answerPending,
  closedByServer,
  nodeListener,
  routedTarget,
} from '../lib/serving/adapters/node.ts';
import {
  type FetchHandler,
  type PlainResponse,
  plainError,
  type Refusal,
  tooLarge,
} from '../lib/serving/exchange.ts';
import { clip, requestIdFrom } from '../lib/serving/http.ts';

export interface FetchApp extends FetchHandler {
  /** Writes out buffered telemetry; called at shutdown once the last request has finished. */
  flushTelemetry?(): void | Promise<void>;
  /** Logs and counts a request the server answered itself (see `Refusal`). */
  reportRefusal?(refusal: Refusal): void;
}

export interface ServerOptions {
  readonly app: FetchApp;
  /** 0 picks a free port. @default 8080 */
  readonly port?: number;
  /** @default 127.0.0.1 (use 0.0.0.0 in a container) */
  readonly host?: string;
  /** How long in-flight requests get to finish after shutdown starts. @default 10 000 ms */
  readonly shutdownTimeoutMs?: number;
  /** Shut down and exit on SIGTERM and SIGINT. @default true */
  readonly handleSignals?: boolean;
  /** Runs once the server has stopped (after in-flight requests), before the process exits. */
  readonly onShutdown?: () => void | Promise<void>;
  /** How a signal-triggered shutdown ends the process. @default process.exit */
  readonly exit?: (code: number) => void;
  /**
   * The app's request body limit: a request that declares more and waits for `100 Continue` before sending it is
   * answered 413 at once, without inviting the body.
   * @default - every `Expect: 100-continue` is answered 100 Continue, and the app refuses what follows
   */
  readonly bodyLimit?: number;
}

export interface RunningServer {
  readonly server: Server;
  /** `http://host:port`, with the port actually bound. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Stops accepting, waits for in-flight requests (up to the timeout), runs `onShutdown`. Idempotent. */
  shutdown(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.shutdownTimeoutMs ?? 10_000;
  let stopping = false;
  // Once shutdown starts, every answer (in flight or new) closes its connection, and the connections idle then are
  // closed at once (Node's server.close does so too). Node counts a connection whose last answer has been ended as
  // idle even while that answer is still being flushed: a large answer to a slow reader, written just before
  // shutdown, can be cut short.
  //
  // The requests in flight are deliberately not kept in a collection: a long-lived Set whose members change with
  // every request made V8 promote whole requests (their IncomingMessage, ServerResponse, app context, ...) to the
  // old generation in 13 of 21 runs under load: 0.65-0.79 MB per young-generation collection, each taking 7-10 ms
  // instead of 1 ms, and 25% less throughput (bench:serve's "bad mode"). Without it: none in 15 runs.
  const listener = nodeListener(options.app, { closeConnection: () => stopping });
  // Connections that have not made a request yet (load balancers open some ahead of need): Node's
  // closeIdleConnections leaves them, and one that has sent nothing would hold a shutdown until its timeout. Each
  // stays here only until its first request, so that the set is empty in steady state. (Not a 'data' listener on
  // the socket: one puts the socket's reads through JavaScript, ~11k more instructions per request.)
  const unused = new Set<Socket>();
  const used = (req: IncomingMessage): void => {
    if (unused.size !== 0) unused.delete(req.socket);
  };
  // What Node answers itself (a request it cannot parse, headers too large, a request too slow, an Expect it does
  // not meet) is answered as every other error is: JSON, with a request id; and logged and counted as every other
  // answer is, by the app.
  const report = (answer: PlainResponse, message: string, req?: IncomingMessage, err?: ClientError): void => {
    const line = req
      ? { method: req.method, target: req.url }
      : requestLine(err?.rawPacket, err?.bytesParsed);
    const refusal: Refusal = {
      requestId: answer.headers['x-request-id'] as string,
      status: answer.status,
      error: message,
      ...(line.method !== undefined ? { method: line.method } : {}),
      ...(line.target !== undefined ? { target: routedTarget(line.target) } : {}),
    };
    try {
      options.app.reportRefusal?.(refusal);
    } catch (err) {
      process.stderr.write(
        `maap: the refusal of request ${refusal.requestId} was not logged: ${String(err)}\n`,
      );
    }
  };
  /**
   * Answers `req` itself with `status` and `message`, and reports it: at once when it is the connection's current
   * request. A request waiting for its turn (pipelined behind one being answered) is answered at once all the same
   * (Node holds the answer, and the bytes it holds keep it from reading more requests), but reported only once its
   * answer has gone out: if the one ahead ends the connection, it never goes out, and is not logged.
   */
  const refuse = (req: IncomingMessage, res: ServerResponse, status: number, message: string): void => {
    const answer = plainError(status, message, requestIdOf(req));
    res.writeHead(answer.status, refusalHead(answer));
    res.end(answer.body);
    if (res.socket !== null) report(answer, message, req);
    else res.once('finish', () => report(answer, message, req));
  };
  // Node's own answer to an HTTP/1.1 request without a Host header is an empty 400: this one is JSON, and logged.
  // (Node checks Host before anything else: so does every handler here.)
  const refusedForHost = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (!lacksHost(req)) return false;
    refuse(req, res, 400, MISSING_HOST);
    return true;
  };
  const server = createServer({ requireHostHeader: false }, (req, res) => {
    used(req);
    if (!refusedForHost(req, res)) listener(req, res);
  });
  server.on('connection', (socket: Socket) => {
    unused.add(socket);
    socket.once('close', () => unused.delete(socket));
  });
  // Longer than the usual load balancer idle timeout (60 s), so that the balancer closes first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // A whole request (6 MiB by default) must arrive within 2 minutes, not Node's 5: a client that declares more body
  // than it sends holds its connection and the body so far.
  server.requestTimeout = 120_000;
  // Connections to end once the answer in progress has gone out (a malformed request pipelined behind it).
  const ending = new WeakSet<Duplex>();
  server.on('clientError', (err: ClientError, socket: Duplex) => {
    // An exception here would end the process: a connection whose refusal fails is only cut.
    try {
      answerRefused(err, socket);
    } catch (failure) {
      socket.destroy();
      process.stderr.write(
        `maap: answering a refused request failed: ${(failure as Error)?.stack ?? String(failure)}\n`,
      );
    }
  });
  const answerRefused = (err: ClientError, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy(); // nobody to answer, or an answer already ended the connection
      return;
    }
    // The answer in progress on this connection, if any (Node's own default handler looks at the same; Node sets it
    // to null once that answer has gone out), and the request Node was reading when it gave up.
    const current = answerInProgress(socket);
    const parser = (socket as Duplex & { parser?: { incoming?: unknown } | null }).parser;
    const parsing = parser?.incoming instanceof IncomingMessage ? parser.incoming : undefined;
    if (ending.has(socket)) {
      // Already ending (below): more of what follows is malformed too. Anything else (what is being read does not
      // arrive in time: Node's timeouts run for the malformed request) cuts the connection, unless an answer is being
      // made or written there, which ends it when it has gone out.
      if (!err.code?.startsWith('HPE_') && (current === undefined || current.writableFinished)) {
        closedByServer(socket);
        socket.destroy();
      }
      return;
    }
    if (current !== undefined && current.req?.complete === true) {
      // The error is in a request pipelined behind one being answered: that answer goes out first (answering this
      // one now would put its answer in that one's place, or cut an answer being written), then those of the whole
      // requests queued behind it, then the connection ends. The malformed one gets no answer, and is not logged:
      // nothing was answered (its client may send it again on a new connection). When its body was malformed, its
      // head was read: the app takes it up when its turn comes, and must not log it. (After a malformed head,
      // Node's `incoming` is the last whole request, not it.)
      ending.add(socket);
      if (parsing?.complete === false) answeredByServer(parsing);
      endAfter(current, socket);
      return;
    }
    if (current?.req && answerPending(current.req)) {
      // The app has answered it, and the answer waits for the rest of the body to be dropped (during a shutdown),
      // which now never ends: that answer (logged) cannot go out any more.
      socket.destroy();
      return;
    }
    const answeredAlready = current === undefined ? parsing?.complete === false : current.headersSent;
    if (answeredAlready) {
      // The app has answered the request whose body Node was reading (early: a 404, a 413, ...) and that body, being
      // read and dropped, broke, stopped coming or was cut: that answer (logged) goes out, or has, and the
      // connection ends without a second one.
      ending.add(socket);
      closedByServer(socket);
      if (current === undefined) endConnection(socket);
      else endAfter(current, socket);
      return;
    }
    const req = current?.req;
    if (req && err.code === CLIENT_ENDED) {
      // The client ended the connection in the middle of the body: there is nobody to answer, and the app logs the
      // request as cut off by its client (499), as it does when the connection is reset.
      socket.destroy();
      return;
    }
    // A request the app has whose body Node was still reading (it broke, or did not arrive in time) is the one
    // refused: this answer is its answer (see answeredByServer), logged with its method, path and request id.
    // Otherwise the refused request never reached the app, and is read from the packet.
    const answer = answerClientError(err, socket, req && requestIdOf(req));
    if (req) answeredByServer(req);
    report(answer.answer, answer.message, req, err);
  };
  if (options.bodyLimit !== undefined) {
    const limit = options.bodyLimit;
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      used(req);
      if (refusedForHost(req, res)) return;
      if (Number(req.headers['content-length'] ?? 0) > limit) {
        refuse(req, res, 413, tooLarge(limit).message); // the body was not sent: nothing to drop
        return;
      }
      res.writeContinue();
      listener(req, res);
    });
  }
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    used(req);
    if (refusedForHost(req, res)) return;
    const expect = clip(req.headers.expect ?? '', 100);
    refuse(req, res, 417, `Expect: ${expect} is not supported (only 100-continue is)`);
  });

  await listen(server, options.port ?? 8080, host);
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let shuttingDown: Promise<void> | undefined;
  const signals: NodeJS.Signals[] = options.handleSignals === false ? [] : ['SIGTERM', 'SIGINT'];
  const onSignal = (signal: NodeJS.Signals) => {
    const exit = options.exit ?? ((code: number) => process.exit(code));
    process.stderr.write(`maap: ${signal}: shutting down\n`);
    shutdown().then(
      () => exit(0),
      (err) => {
        process.stderr.write(`maap: shutdown failed: ${(err as Error)?.stack ?? String(err)}\n`);
        exit(1);
      },
    );
  };
  for (const signal of signals) process.once(signal, onSignal);

  function shutdown(): Promise<void> {
    shuttingDown ??= (async () => {
      stopping = true;
      for (const signal of signals) process.off(signal, onSignal);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // After one turn of the event loop: a request already in a connection's receive buffer is read by then
      // (its bytesRead is still 0 before), and that connection is no longer one that has sent nothing.
      await new Promise((turn) => setImmediate(turn));
      for (const socket of unused) if (socket.bytesRead === 0) socket.destroy();
      const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
      force.unref();
      try {
        await closed;
      } finally {
        clearTimeout(force);
      }
      // The log lines and metrics of the requests answered are written out before onShutdown, which may wait (for a
      // model run the timeout cut off, still running): a process killed meanwhile keeps them. onShutdown gets one
      // more timeout's worth of time, then the process ends without it.
      await options.app.flushTelemetry?.();
      try {
        await within(options.onShutdown?.(), timeoutMs, () =>
          process.stderr.write(
            `maap: shutdown: onShutdown did not finish within ${timeoutMs} ms; ending without it\n`,
          ),
        );
      } finally {
        await options.app.flushTelemetry?.();
      }
    })();
    return shuttingDown;
  }

  return { server, url, host, port, shutdown };
}

/** Waits for `work` at most `ms`; `late` is called if it has not settled by then (it keeps running). */
async function within(work: void | Promise<void>, ms: number, late: () => void): Promise<void> {
  if (!(work instanceof Promise)) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      late();
      resolve();
    }, ms);
    timer.unref();
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The head of a refusal the server writes itself (`plainError`'s, with its request id): it ends the connection. */
function refusalHead(answer: PlainResponse): Record<string, string> {
  return { ...answer.headers, 'content-length': String(Buffer.byteLength(answer.body)), connection: 'close' };
}

/** The caller's request id when it is a sane one (as the app takes it), else a fresh one. */
function requestIdOf(req: IncomingMessage): string {
  const id = req.headers['x-request-id'];
  return requestIdFrom(typeof id === 'string' ? id : undefined);
}

/** What Node passes to 'clientError': its parser's error, with the bytes it was parsing when it has them. */
type ClientError = NodeJS.ErrnoException & { reason?: string; rawPacket?: Buffer; bytesParsed?: number };

/** A request line at the start of a line. */
const REQUEST_LINE = /^([!#$%&'*+.^`|~\w-]{1,32}) ([!-~]{1,8192}) HTTP\/1\.[01]\r?\n/gm;
/** How far before the error a refused request's line can start: its line (8 KiB at most here), then its head. */
const REQUEST_LINE_REACH = 8300 + 16 * 1024;

/**
 * The method and target of the request Node was parsing when it gave up: the last request line in `packet` (the bytes
 * it was parsing, which may begin with whole requests before that one) that starts before `errorAt` (the error's
 * `bytesParsed`); none when there is none.
 */
export function requestLine(
  packet: Buffer | undefined,
  errorAt: number = packet?.length ?? 0,
): { method?: string; target?: string } {
  if (packet === undefined) return {};
  const end = Math.min(Math.max(errorAt, 0), packet.length);
  const text = packet.toString(
    'latin1',
    Math.max(0, end - REQUEST_LINE_REACH),
    Math.min(packet.length, end + 8300),
  );
  const limit = Math.min(end, REQUEST_LINE_REACH);
  let found: RegExpExecArray | undefined;
  REQUEST_LINE.lastIndex = 0;
  for (let m = REQUEST_LINE.exec(text); m !== null && m.index <= limit; m = REQUEST_LINE.exec(text))
    found = m;
  // A head that ended before the error belongs to a whole request before the refused one (whose own line is then
  // not a request line at all): none.
  if (found === undefined || /\r?\n\r?\n/.test(text.slice(found.index, limit))) return {};
  return { method: found[1] as string, target: found[2] as string };
}

/** Node's parser error for a connection the client ended before the whole request arrived. */
const CLIENT_ENDED = 'HPE_INVALID_EOF_STATE';

/** Why Node refused a request before it reached the app, as a status and a message. */
function clientErrorAnswer(err: ClientError): [number, string] {
  switch (err.code) {
    case CLIENT_ENDED:
      return [400, 'the request was cut off: the client ended the connection before all of it arrived'];
    case 'HPE_HEADER_OVERFLOW':
      return [431, `the request's headers are larger than ${maxHeaderSize} bytes`];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'the request did not arrive in time'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'the chunk extensions of the request body are too large'];
    default:
      return [
        400,
        `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'}: ${err.reason ?? err.message})`,
      ];
  }
}

/**
 * Answers a request Node could not take (see `clientErrorAnswer`) with JSON, and ends the connection: what follows on
 * it cannot be trusted.
 */
function answerClientError(
  err: ClientError,
  socket: Duplex,
  requestId?: string,
): { readonly answer: PlainResponse; readonly message: string } {
  const [status, message] = clientErrorAnswer(err);
  const answer = plainError(status, message, requestId);
  closedByServer(socket); // a request in flight on it loses its answer to this refusal, not to its client
  endWith(socket, answer);
  return { answer, message };
}

/** The answer Node is making or writing on `socket` (its `_httpMessage`, null once that answer has gone out). */
function answerInProgress(socket: Duplex): (ServerResponse & { req?: IncomingMessage }) | undefined {
  return (
    (socket as Duplex & { _httpMessage?: (ServerResponse & { req?: IncomingMessage }) | null })
      ._httpMessage ?? undefined
  );
}

/**
 * Ends `socket` once `res` has gone out, and after it every whole request queued behind it (Node hands the connection
 * to the next one as each answer goes out), up to the malformed one, which is never answered.
 */
function endAfter(res: ServerResponse, socket: Duplex): void {
  res.once('finish', () => {
    const next = answerInProgress(socket);
    if (next && next !== res && next.req?.complete === true) {
      endAfter(next, socket);
      return;
    }
    closedByServer(socket);
    endConnection(socket);
  });
}

/** How long a connection the server ended is left for its client to read the answer and close it. */
const LINGER_MS = 2_000;

/**
 * Ends `socket` (after `data`), and cuts it if its client has not closed it after `LINGER_MS`: a connection whose
 * request Node could not parse is not one its server's shutdown sees, and a client that never closes its side
 * would otherwise hold the shutdown until its timeout.
 */
function endConnection(socket: Duplex, data?: string): void {
  if (data === undefined) socket.end();
  else socket.end(data);
  const cut = setTimeout(() => socket.destroy(), LINGER_MS);
  cut.unref();
  socket.once('close', () => clearTimeout(cut));
}

/** Writes `answer` straight to a connection Node has given up on, and ends it. */
function endWith(socket: Duplex, answer: PlainResponse): void {
  const head = Object.entries(refusalHead(answer))
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  endConnection(
    socket,
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\n${head}\r\n${answer.body}`,
  );
}

const MISSING_HOST = 'an HTTP/1.1 request must have a Host header (RFC 9112, section 3.2)';

/** An HTTP/1.1 request without a Host header (what Node's requireHostHeader refuses). */
function lacksHost(req: IncomingMessage): boolean {
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor !== 1) return false;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host'))
      return false;
  }
  return true;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE')
        reject(new UsageError(`cannot listen on ${host}:${port}: the port is in use`));
      else if (err.code === 'EACCES')
        reject(new UsageError(`cannot listen on ${host}:${port}: permission denied`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') {
        reject(new UsageError(`cannot listen on ${host}:${port}: no such local address`));
      } else reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}
