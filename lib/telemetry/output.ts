/**
 * Telemetry output for a long-running server: lines (request log lines, EMF documents) are queued in memory and
 * written to stdout in one write per flush, in the order they were produced, instead of one write (a system call,
 * and a wake-up of the reader) per line. A flush happens at most 50 ms after the first queued line, as soon as
 * 128 KiB are queued, when the server shuts down (`drain()`, which also waits until everything is
 * written), and at process exit (`onExit` hooks run synchronously, last registered first).
 *
 * The process's own stdout (fd 1) is written directly, never blocking the event loop: Node makes a pipe or socket
 * non-blocking, and what a full pipe does not take yet stays queued here and is retried a few milliseconds later
 * (a file or terminal takes everything at once). Going through `process.stdout` instead would leave those bytes in
 * Node's write queue, which `process.exit()` drops; kept here, the exit hook writes them synchronously (waiting,
 * for at most 2 s, for a slow reader). Lines stay in order with other stdout output: nothing is written while
 * `process.stdout` itself has output queued (e.g. from console.log).
 *
 * Lambda does not use this: a frozen sandbox would hold queued lines until its next invocation.
 */
import { writeSync } from 'node:fs';
import { format } from 'node:util';
import type { SinkConsole } from './sink.ts';

/** Where telemetry lines go, in order. */
export interface LineOutput {
  /** Queues one complete line (a JSON document), without its newline. */
  write(line: string): void;
  /**
   * Queues one line that `encode` writes itself, as UTF-8 bytes, into `buffer` from `offset` (at most `most` bytes,
   * without the newline), and returns where it ended; or -1 to queue nothing (the caller then writes the line as a
   * string). False when nothing was queued. For a caller that makes many lines of a known shape: its bytes go
   * straight into the queue, without a string built, flattened and encoded per line.
   */
  writeEncoded<T>(most: number, encode: LineEncoder<T>, arg: T): boolean;
  /** Writes every queued line now, in one write. */
  flush(): void;
  /** Flushes, then resolves once everything is written out (or after `timeoutMs`). */
  drain(timeoutMs?: number): Promise<void>;
}

/** Writes one line's bytes into `buffer` from `offset`; returns the offset after them, or -1 to write nothing. */
export type LineEncoder<T> = (buffer: Buffer, offset: number, arg: T) => number;

/** The stream a `LineOutput` writes to: process.stdout, or any Writable. */
export interface LineStream {
  write(chunk: string | Uint8Array): boolean;
  readonly writableLength?: number;
  once(event: 'drain' | 'close' | 'error', listener: (...args: unknown[]) => void): unknown;
  off(event: 'drain' | 'close' | 'error', listener: (...args: unknown[]) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

export interface BufferedLinesOptions {
  /** @default process.stdout (written through its file descriptor, see the module comment) */
  readonly stream?: LineStream;
  /** Longest a line waits in the queue. @default 50 ms */
  readonly maxDelayMs?: number;
  /** Queued bytes that trigger a flush at once. @default 128 KiB */
  readonly maxBytes?: number;
  /** Flush synchronously at process exit. @default true */
  readonly flushAtExit?: boolean;
}

/** How long `drain()` waits for a slow reader by default before giving up (shutdown must end). */
export const DRAIN_TIMEOUT_MS = 5_000;
/** How soon bytes a full pipe did not take are retried. */
const RETRY_MS = 5;
/** How long the exit hook waits for a slow reader. */
const EXIT_WAIT_MS = 2_000;

/** A `LineOutput` that queues lines and writes them in batches (see the module comment). */
export function bufferedLines(options: BufferedLinesOptions = {}): LineOutput {
  const stdout = process.stdout as unknown as LineStream & { fd?: number };
  const stream = options.stream ?? stdout;
  // fd 1 only on the main thread: a worker thread's process.stdout is a stream to its parent, without an fd.
  const fd = stream === stdout && stdout.fd === 1 ? 1 : undefined;
  const target = fd === undefined ? streamTarget(stream) : fdTarget(fd, stream);
  const maxDelayMs = options.maxDelayMs ?? 50;
  const maxBytes = options.maxBytes ?? 128 * 1024;
  // Lines are encoded straight into one buffer (a string queue would be copied twice more: joined, then encoded).
  const capacity = maxBytes + 64 * 1024;
  let buffer = Buffer.allocUnsafe(capacity);
  let used = 0;
  let timer: NodeJS.Timeout | undefined;

  const take = (): Buffer => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    const chunk = buffer.subarray(0, used);
    used = 0;
    return chunk;
  };
  const flush = (): void => {
    if (used === 0) return;
    // A target that keeps the chunk (a stream) gets this buffer; the next lines go to a new one.
    if (target.write(take())) buffer = Buffer.allocUnsafe(capacity);
  };
  const onTimer = (): void => {
    timer = undefined;
    flush();
  };
  if (options.flushAtExit !== false) onExit(() => target.writeAtExit(take()));
  /** Ends the line just queued up to `end`, then flushes if enough is queued, or makes sure a flush is due. */
  const queued = (end: number): void => {
    used = end;
    buffer[used++] = 0x0a;
    if (used >= maxBytes) flush();
    else if (timer === undefined) {
      timer = setTimeout(onTimer, maxDelayMs);
      timer.unref();
    }
  };

  return {
    write(line) {
      const most = line.length * 3 + 1; // UTF-8 takes at most 3 bytes per UTF-16 unit
      if (used + most > capacity) {
        flush();
        if (most > capacity) {
          target.write(Buffer.from(`${line}\n`));
          return;
        }
      }
      queued(used + buffer.write(line, used));
    },
    writeEncoded(most, encode, arg) {
      if (most + 1 > capacity) return false;
      if (used + most + 1 > capacity) flush();
      const end = encode(buffer, used, arg);
      if (end < 0) return false; // what it wrote past `used` is overwritten by the next line
      if (end > used + most)
        throw new RangeError(`a line encoder wrote ${end - used} bytes, over its ${most}`);
      queued(end);
      return true;
    },
    flush,
    drain(timeoutMs = DRAIN_TIMEOUT_MS) {
      flush();
      return target.drained(timeoutMs);
    },
  };
}

/** Where a flush goes. */
interface Target {
  /** Writes `chunk`; returns true when it keeps a reference to it (the caller must not reuse it). */
  write(chunk: Buffer): boolean;
  /** Resolves once nothing is left unwritten (or after `timeoutMs`). */
  drained(timeoutMs: number): Promise<void>;
  /** Writes `chunk` (and anything left unwritten) synchronously: the process is exiting. */
  writeAtExit(chunk: Buffer): void;
}

/** Any stream: written with `write`, drained on its 'drain' event. */
function streamTarget(stream: LineStream): Target {
  let broken = false;
  // A closed stream (EPIPE: the reader went away) must not crash the server; like console, stop writing.
  stream.on('error', () => {
    broken = true;
  });
  const write = (chunk: Buffer): boolean => {
    if (broken || chunk.length === 0) return false;
    try {
      stream.write(chunk);
    } catch {
      broken = true;
    }
    return true;
  };
  return {
    write,
    writeAtExit: write,
    drained(timeoutMs) {
      if (broken || !stream.writableLength) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          stream.off('drain', done);
          stream.off('close', done);
          stream.off('error', done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        timer.unref();
        stream.once('drain', done);
        stream.once('close', done);
        stream.once('error', done);
      });
    },
  };
}

/** A file descriptor written with non-blocking `writeSync` calls; `stream` is its Node stream (see module comment). */
function fdTarget(fd: number, stream: LineStream): Target {
  let unwritten: Buffer | undefined; // bytes a full pipe did not take yet (a copy: chunks are reused)
  let retry: NodeJS.Timeout | undefined;
  let broken = false;

  /** Writes what it can of `chunk` now; returns the bytes left (EAGAIN: the pipe is full), a view of `chunk`. */
  const attempt = (chunk: Buffer): Buffer | undefined => {
    try {
      const written = writeSync(fd, chunk);
      return written >= chunk.length ? undefined : chunk.subarray(written);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return chunk;
      broken = true; // EPIPE and the like: the reader is gone, like console, stop writing
      return undefined;
    }
  };
  const writeOut = (): void => {
    retry = undefined;
    if (broken || unwritten === undefined) return;
    // process.stdout has output of its own queued (console.log): ours goes after it.
    if (!stream.writableLength) unwritten = attempt(unwritten);
    if (unwritten !== undefined && !broken) {
      retry = setTimeout(writeOut, RETRY_MS);
      retry.unref();
    }
  };
  return {
    write(chunk) {
      if (broken) return false;
      if (unwritten === undefined && !stream.writableLength) {
        const rest = attempt(chunk);
        if (rest === undefined) return false;
        unwritten = Buffer.from(rest);
      } else {
        unwritten = unwritten === undefined ? Buffer.from(chunk) : Buffer.concat([unwritten, chunk]);
      }
      if (retry === undefined && !broken) writeOut();
      return false;
    },
    async drained(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (unwritten !== undefined && !broken && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    },
    writeAtExit(chunk) {
      if (broken) return;
      let rest: Buffer | undefined = unwritten === undefined ? chunk : Buffer.concat([unwritten, chunk]);
      unwritten = undefined;
      if (retry !== undefined) clearTimeout(retry);
      const deadline = Date.now() + EXIT_WAIT_MS;
      while (rest !== undefined && rest.length > 0 && !broken && Date.now() < deadline) rest = attempt(rest);
    },
  };
}

let stdout: LineOutput | undefined;

/** The process-wide buffered stdout output: one per process, so that every line written through it stays in order. */
export function stdoutLines(): LineOutput {
  stdout ??= bufferedLines();
  return stdout;
}

/**
 * A console for powertools' Logger and Metrics: what they print to stdout (log, info, debug, trace: log lines and
 * EMF documents) goes to `output`; warn and error (powertools prints ERROR lines and its own warnings there) go
 * to stderr directly, as with powertools' own console.
 */
export function outputConsole(output: LineOutput, errors: LineStream = process.stderr): SinkConsole {
  const line = (args: unknown[]): string =>
    args.length === 1 && typeof args[0] === 'string' ? args[0] : format(...args);
  const out = (...args: unknown[]): void => output.write(line(args));
  const err = (...args: unknown[]): void => {
    try {
      errors.write(`${line(args)}\n`);
    } catch {
      // stderr is gone: nowhere to report it
    }
  };
  return { log: out, info: out, debug: out, trace: out, warn: err, error: err };
}

const exitHooks: (() => void)[] = [];

/**
 * Runs `hook` synchronously when the process exits (process.exit, the event loop emptying, an uncaught
 * exception), after the hooks registered later: a producer registered after its output publishes into it
 * before the output is written out. Returns a function that unregisters the hook.
 */
export function onExit(hook: () => void): () => void {
  if (exitHooks.length === 0) process.on('exit', runExitHooks);
  exitHooks.push(hook);
  return () => {
    const i = exitHooks.indexOf(hook);
    if (i >= 0) exitHooks.splice(i, 1);
    if (exitHooks.length === 0) process.off('exit', runExitHooks);
  };
}

function runExitHooks(): void {
  for (const hook of [...exitHooks].reverse()) {
    try {
      hook();
    } catch {
      // one failing hook must not keep the others from running
    }
  }
}
