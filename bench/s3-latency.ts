/**
 * A TCP proxy in front of s3rver whose answers start `latencyMs` after a request's first byte arrived: S3's
 * first-byte time (tens of milliseconds for a GET), which s3rver on loopback does not have. With it the cold-start
 * bench shows whether the bundle overlaps S3's answer time with its own start or waits for it.
 */
import { createConnection, createServer, type Socket } from 'node:net';

export interface LatencyProxy {
  /** `http://127.0.0.1:<port>`: the endpoint to give the bundle instead of s3rver's. */
  readonly endpoint: string;
  close(): Promise<void>;
}

/** Proxies `target` (`http://127.0.0.1:<port>`), holding each connection's answer until `latencyMs` after its request. */
export async function latencyProxy(target: string, latencyMs: number): Promise<LatencyProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection(Number(port), hostname);
    sockets.add(client).add(upstream);
    let asked: number | undefined; // when the request's first byte arrived
    let queue = Promise.resolve();
    // Everything S3 sends back (then its end) goes out in order, none of it before asked + latencyMs.
    const later = (send: () => void): void => {
      queue = queue
        .then(
          () =>
            new Promise<void>((wake) => setTimeout(wake, Math.max(0, (asked ?? 0) + latencyMs - Date.now()))),
        )
        .then(send);
    };
    client.on('data', (chunk) => {
      asked ??= Date.now();
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => later(() => client.write(chunk)));
    upstream.on('end', () => later(() => client.end()));
    client.on('end', () => upstream.end());
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => sockets.delete(a));
    }
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const address = server.address();
  const listening = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${listening}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((ok) => server.close(ok));
    },
  };
}
