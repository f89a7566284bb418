import { randomBytes } from 'node:crypto';
import type { WriteStream } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UsageError } from '../errors.ts';

/**
 * A file that appears whole or not at all: bytes go to a hidden temporary file beside `path`, which `commit`
 * fsyncs and renames into place, and `discard` removes. Opening fails early with a message a person can act
 * on (the folder does not exist, is not writable, ...), before any work is done.
 */
export interface AtomicFile {
  readonly path: string;
  readonly stream: WriteStream;
  /** Renames the finished file into place; `durable` fsyncs it first (a crash cannot leave it empty). */
  commit(options?: { durable?: boolean }): Promise<void>;
  discard(): Promise<void>;
}

export async function createAtomicFile(path: string): Promise<AtomicFile> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle;
  try {
    handle = await open(temp, 'wx', 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? `the folder ${dirname(path)} does not exist`
        : code === 'EACCES' || code === 'EROFS' || code === 'EPERM'
          ? `the folder ${dirname(path)} is not writable`
          : code === 'ENAMETOOLONG'
            ? 'the name is too long'
            : (code ?? (err as Error).message);
    throw new UsageError(`cannot write ${path}: ${why}`, { cause: err });
  }
  // The stream owns the handle and closes it when it finishes (or is destroyed).
  const stream = handle.createWriteStream({ highWaterMark: 1 << 20 });
  stream.on('error', () => {}); // surfaced through the pipeline that writes into it
  return {
    path,
    stream,
    async commit({ durable = true } = {}) {
      if (!stream.closed) await new Promise<void>((ok) => stream.once('close', () => ok()));
      if (durable) await fsyncFile(temp);
      await rename(temp, path);
    },
    async discard() {
      stream.destroy();
      if (!stream.closed) await new Promise<void>((ok) => stream.once('close', () => ok()));
      await rm(temp, { force: true }).catch(() => {});
    },
  };
}

/** Flushes a file's data to disk (before a rename publishes it). */
export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
