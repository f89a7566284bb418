/**
 * A TCP proxy in front of s3rver whose answers start `latencyMs` after their request's first byte arrived: S3's
 * first-byte time (tens of milliseconds for a GET), which s3rver on loopback does not have. With it the cold-start
 * bench shows whether the bundle overlaps S3's answer time with its own start or waits for it.
 *
 * Each answer is held once, then streams through with backpressure; a request that follows on the same connection
 * (keep-alive) is held again. Half-closed connections stay open for the answer.
 */
import { createConnection, createServer, type Socket } from 'node:net';

export interface LatencyProxy {
  /** `http://127.0.0.1:<port>`: the endpoint to give the bundle instead of s3rver's. */
  readonly endpoint: string;
  close(): Promise<void>;
}

/** Proxies `target` (`http://127.0.0.1:<port>`), each answer starting `latencyMs` after its request. */
export async function latencyProxy(target: string, latencyMs: number): Promise<LatencyProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = createConnection({ port: Number(port), host: hostname, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    /** When the request being answered arrived; undefined once its answer has started. */
    let asked: number | undefined;
    /** An answer's first chunk is held; its end, if it comes meanwhile, waits for it. */
    let held = false;
    let endWhenReleased = false;
    client.on('data', (chunk) => {
      asked ??= Date.now();
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    client.on('drain', () => upstream.resume());
    const relay = (chunk: Buffer): void => {
      if (!client.write(chunk)) upstream.pause();
    };
    upstream.on('data', (chunk: Buffer) => {
      const hold = asked === undefined ? 0 : asked + latencyMs - Date.now();
      asked = undefined;
      if (hold <= 0) {
        relay(chunk);
        return;
      }
      upstream.pause(); // what follows waits behind this chunk, in order
      held = true;
      setTimeout(() => {
        held = false;
        relay(chunk);
        if (endWhenReleased) client.end();
        else if (client.writableLength === 0) upstream.resume();
      }, hold);
    });
    upstream.on('end', () => {
      if (held) endWhenReleased = true;
      else client.end();
    });
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
