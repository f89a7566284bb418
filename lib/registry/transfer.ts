import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { PackageIntegrityError, UsageError } from '../errors.ts';
import { fsyncFile } from '../package/atomic-file.ts';
import type { Manifest } from '../package/manifest.ts';
import { type VerifiedPackage, type VerifyOptions, verifyPackage } from '../package/verify.ts';
import { teeInto } from './io.ts';

/** What identifies one state of a file: a write, truncation or replacement changes at least one field. */
export interface FileIdentity {
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

export async function fileIdentity(path: string): Promise<FileIdentity> {
  const { ino, size, mtimeNs, ctimeNs } = await stat(path, { bigint: true });
  return { ino, size, mtimeNs, ctimeNs };
}

const sameFile = (a: FileIdentity, b: FileIdentity) =>
  a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

/** A package that passed verification, with the identity of the file state that was verified. */
export interface VerifiedFile {
  readonly verified: VerifiedPackage;
  readonly identity: FileIdentity;
}

export interface VerifyStreamOptions {
  readonly trustedKeys?: VerifyOptions['trustedKeys'];
  /** Called with the bytes read so far. */
  readonly onProgress?: (transferred: number) => void;
}

/** Verifies a local package, remembering which state of the file was verified. */
export async function verifyFile(path: string, options: VerifyStreamOptions = {}): Promise<VerifiedFile> {
  const identity = await fileIdentity(path);
  const verified = await verifyPackage(path, {
    trustedKeys: options.trustedKeys,
    onProgress: options.onProgress,
  });
  if (!sameFile(identity, await fileIdentity(path))) {
    throw new PackageIntegrityError(`${path} changed while it was being verified; nothing was pushed`);
  }
  return { verified, identity };
}

/**
 * The file's bytes as a stream that errors at its very end, before an upload can complete, when the file is
 * no longer the one that was verified (written, truncated or replaced in between): the store then discards
 * the upload. Hashing the bytes again would cost as much as the verification itself; the file's identity
 * (inode, size, modification and change times) catches any write through the file system.
 */
export function unchangedStream(path: string, expected: FileIdentity): Readable {
  async function* read(): AsyncGenerator<Buffer> {
    let bytes = 0n;
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
      bytes += BigInt((chunk as Buffer).length);
      yield chunk as Buffer;
    }
    if (bytes !== expected.size || !sameFile(expected, await fileIdentity(path))) {
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
): Promise<{ verified: VerifiedPackage; bytes: number }> {
  const temp = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await mkdir(dirname(out), { recursive: true })
    .then(() => open(temp, 'wx'))
    .catch((err: Error) => {
      throw new UsageError(`cannot write ${out}: ${err.message}`, { cause: err });
    });
  const file = handle.createWriteStream();
  file.on('error', () => {}); // surfaced by drained() and finished()
  let bytes = 0;
  try {
    const verified = await teeInto(
      await open_(),
      async (chunk) => {
        bytes += chunk.length;
        if (!file.write(chunk)) await drained(file);
        options.onProgress?.(bytes);
      },
      (input) => verifyPackage(input, { trustedKeys: options.trustedKeys }),
    );
    file.end();
    await finished(file);
    options.accept?.(verified.manifest);
    await fsyncFile(temp);
    await rename(temp, out).catch((err: NodeJS.ErrnoException) => {
      const why = err.code === 'EISDIR' ? 'it is a folder: give a file path' : (err.code ?? err.message);
      throw new UsageError(`cannot write ${out}: ${why}`, { cause: err });
    });
    return { verified, bytes };
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
