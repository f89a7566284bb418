import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { PackageIntegrityError, UsageError } from '../errors.ts';
import type { Manifest } from '../package/manifest.ts';
import { type VerifiedPackage, type VerifyOptions, verifyPackage } from '../package/verify.ts';
import { teeInto } from './io.ts';

/** A package that passed verification, with the SHA-256 and size of exactly the bytes that were verified. */
export interface VerifiedBytes {
  readonly verified: VerifiedPackage;
  readonly sha256: string;
  readonly bytes: number;
}

export interface VerifyStreamOptions {
  readonly trustedKeys?: VerifyOptions['trustedKeys'];
  /** Called with the bytes read so far. */
  readonly onProgress?: (transferred: number) => void;
}

/** Reads a local package once, verifying it and hashing the same bytes. */
export async function verifyFile(path: string, options: VerifyStreamOptions = {}): Promise<VerifiedBytes> {
  const hash = createHash('sha256');
  let bytes = 0;
  const verified = await teeInto(
    createReadStream(path),
    (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
      options.onProgress?.(bytes);
    },
    (input) => verifyPackage(input, { trustedKeys: options.trustedKeys }),
  );
  return { verified, sha256: hash.digest('hex'), bytes };
}

/**
 * The file's bytes as a stream that errors at its very end, before an upload can complete, when they differ
 * from what was verified (the file changed in between): the store then discards the upload.
 */
export function unchangedStream(path: string, expected: { sha256: string; bytes: number }): Readable {
  async function* read(): AsyncGenerator<Buffer> {
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (bytes !== expected.bytes || hash.digest('hex') !== expected.sha256) {
      throw new PackageIntegrityError(`${path} changed while it was being pushed; nothing was pushed`);
    }
  }
  return Readable.from(read(), { objectMode: false });
}

export interface DownloadOptions extends VerifyStreamOptions {
  /** Refuses a verified package that is not the one asked for (throws). */
  readonly accept?: (manifest: Manifest) => void;
}

/**
 * Streams a package into `out` while verifying the same bytes in one pass. The bytes go to a hidden temporary
 * file next to `out`, which is fsynced and renamed into place only when verification succeeded; otherwise it
 * is deleted and nothing is left behind.
 */
export async function downloadVerified(
  open_: () => Promise<Readable>,
  out: string,
  options: DownloadOptions = {},
): Promise<VerifiedBytes> {
  const temp = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await mkdir(dirname(out), { recursive: true })
    .then(() => open(temp, 'wx'))
    .catch((err: Error) => {
      throw new UsageError(`cannot write ${out}: ${err.message}`, { cause: err });
    });
  const file = handle.createWriteStream();
  file.on('error', () => {}); // surfaced by drained() and finished()
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    const verified = await teeInto(
      await open_(),
      async (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
        if (!file.write(chunk)) await drained(file);
        options.onProgress?.(bytes);
      },
      (input) => verifyPackage(input, { trustedKeys: options.trustedKeys }),
    );
    file.end();
    await finished(file);
    options.accept?.(verified.manifest);
    await fsync(temp);
    await rename(temp, out);
    return { verified, sha256: hash.digest('hex'), bytes };
  } catch (err) {
    file.destroy();
    await unlink(temp).catch(() => {});
    throw err;
  }
}

function drained(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      stream.off('drain', done);
      stream.off('error', done);
      if (err) reject(err);
      else resolve();
    };
    stream.on('drain', done);
    stream.on('error', done);
  });
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
