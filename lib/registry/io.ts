import { Readable } from 'node:stream';

/**
 * Streams `source` into `consumer` (e.g. `verifyPackage`) while `onChunk` sees every byte, in order, once.
 * Whatever the consumer leaves unread (it may stop at the archive's end marker) still goes through
 * `onChunk` afterwards, so `onChunk` always sees the whole source: the bytes that were verified are the bytes
 * that get hashed, written or uploaded. The source is destroyed if anything fails.
 */
export async function teeInto<T>(
  source: Readable,
  onChunk: (chunk: Buffer) => void | Promise<void>,
  consumer: (input: Readable) => Promise<T>,
): Promise<T> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let ended = false;
  // One read at a time: the consumer's reads and the final drain never overlap.
  let inFlight: Promise<Buffer | undefined> = Promise.resolve(undefined);
  const pump = (): Promise<Buffer | undefined> => {
    inFlight = inFlight.then(async () => {
      if (ended) return undefined;
      const next = await it.next();
      if (next.done) {
        ended = true;
        return undefined;
      }
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      await onChunk(chunk);
      return chunk;
    });
    return inFlight;
  };
  async function* feed(): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = await pump();
      if (chunk === undefined) return;
      yield chunk;
    }
  }
  try {
    const result = await consumer(Readable.from(feed(), { objectMode: false }));
    while ((await pump()) !== undefined) {
      // drain what the consumer did not read
    }
    return result;
  } catch (err) {
    source.destroy();
    throw err;
  }
}

/** Reads a stream into one buffer. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** `Promise.all(items.map(fn))` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
