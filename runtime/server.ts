/**
 * The Node server adapter: serves a fetch-style app (the predictor's hono app) over HTTP with graceful shutdown.
 * On SIGTERM/SIGINT (or `shutdown()`): stop accepting connections, let in-flight requests finish (their responses
 * carry `Connection: close`), close idle keep-alive connections, force-close what is left after a timeout, run
 * `onShutdown` (e.g. release the model), write out the app's buffered telemetry (`flushTelemetry`: the last log
 * lines and metrics), then exit. A second signal during shutdown kills the process at once.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UsageError } from '../lib/errors.ts';
import { nodeListener } from '../lib/serving/adapters/node.ts';
import type { FetchHandler } from '../lib/serving/exchange.ts';

export interface FetchApp extends FetchHandler {
  /** Writes out buffered telemetry; called at shutdown once the last request has finished. */
  flushTelemetry?(): void | Promise<void>;
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
  const server = createServer(nodeListener(options.app, { closeConnection: () => stopping }));
  // Longer than the usual load balancer idle timeout (60 s), so that the balancer closes first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

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
      const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
      force.unref();
      try {
        await closed;
      } finally {
        clearTimeout(force);
      }
      try {
        await options.onShutdown?.();
      } finally {
        await options.app.flushTelemetry?.();
      }
    })();
    return shuttingDown;
  }

  return { server, url, host, port, shutdown };
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
