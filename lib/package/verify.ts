import type { KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { MaapError, PackageIntegrityError, UsageError } from '../errors.ts';
import { PackageChecker } from './checker.ts';
import type { Manifest } from './manifest.ts';
import { DEFAULT_MAX_MANIFEST_BYTES } from './manifest-rules.ts';
import { loadPublicKey } from './sign.ts';
import { TarFormatError, TarReader } from './tar-reader.ts';

export interface VerifyOptions {
  /** Ed25519 public keys (PEM text, PEM file path or KeyObject). When given, the package must be signed by one. */
  readonly trustedKeys?: readonly (string | KeyObject)[];
  /** Largest single entry accepted, in bytes. @default 8 GiB */
  readonly maxEntryBytes?: number;
  /** Largest manifest accepted, in bytes. @default 1 MiB */
  readonly maxManifestBytes?: number;
  /** When set, every verified entry is written under this directory, which must not exist yet. It is created,
   * and removed again whole if verification fails. */
  readonly extractTo?: string;
  /** Called with the number of archive bytes read so far. */
  readonly onProgress?: (bytes: number) => void;
  /** Keep the verified bytes of every entry in memory and return them as `entries` (to load a model without
   * touching the disk, as on Lambda). */
  readonly keepInMemory?: boolean;
}

export interface VerifiedPackage {
  readonly manifest: Manifest;
  /** The exact bytes of maap.json. */
  readonly manifestBytes: Buffer;
  /** The package identity: SHA-256 (hex) of the manifest bytes. */
  readonly id: string;
  /** Whether a signature entry was present (and, when trusted keys were given, verified by one of them). */
  readonly signed: boolean;
  /** Fingerprint of the trusted key that made the signature. */
  readonly signedBy?: string;
  /** Total size of the archive in bytes. */
  readonly bytes: number;
  /** The verified entries' bytes by path (model.onnx and the manifest's files), with `keepInMemory`. */
  readonly entries?: ReadonlyMap<string, Buffer>;
}

export const DEFAULT_MAX_ENTRY_BYTES = 8 * 1024 ** 3;

/**
 * Streams a package (a file path or a readable) through every integrity check: a strict POSIX ustar archive
 * of regular files (`TarReader`), maap.json first and valid, each entry listed in the manifest exactly once with
 * the listed size and SHA-256, sizes within limits, the ONNX graph self-contained and matching the manifest
 * signature, and the signature (last entry) valid for a trusted key when keys are given (`PackageChecker`).
 * Memory stays flat unless `keepInMemory` asks for the entries.
 */
export async function verifyPackage(
  source: string | Readable,
  options: VerifyOptions = {},
): Promise<VerifiedPackage> {
  const label = typeof source === 'string' ? source : 'package';
  let trusted: KeyObject[];
  try {
    trusted = await Promise.all((options.trustedKeys ?? []).map((k) => loadPublicKey(k)));
    if (options.extractTo) await createExtractDir(options.extractTo);
  } catch (err) {
    if (typeof source !== 'string') source.destroy(); // the caller's stream is never left open
    throw err;
  }
  const input = typeof source === 'string' ? createReadStream(source, { highWaterMark: 1 << 20 }) : source;
  const reader = new TarReader();
  const checker = new PackageChecker(
    trusted,
    {
      maxEntryBytes: options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES,
      maxManifestBytes: options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES,
    },
    options,
  );
  try {
    for await (const chunk of input) {
      for (const event of reader.write(chunk as Buffer)) await checker.on(event);
      options.onProgress?.(reader.bytes);
    }
    reader.end();
    return { ...checker.finish(), bytes: reader.bytes };
  } catch (err) {
    input.destroy();
    await checker.abort();
    if (options.extractTo) {
      const { rm } = await import('node:fs/promises');
      await rm(options.extractTo, { recursive: true, force: true });
    }
    throw asIntegrityError(err, label);
  }
}

async function createExtractDir(path: string): Promise<void> {
  // node:fs/promises only when extracting (see checker.ts).
  const { mkdir } = await import('node:fs/promises');
  try {
    await mkdir(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot extract into ${path}: ${code === 'EEXIST' ? 'it already exists (give a new folder)' : code}`,
    );
  }
}

function asIntegrityError(err: unknown, label: string): Error {
  if (err instanceof TarFormatError) {
    return new PackageIntegrityError(`${label} is not a valid maap package: ${err.message}`, { cause: err });
  }
  if (err instanceof MaapError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT' || e?.code === 'EISDIR' || e?.code === 'EACCES') {
    return new PackageIntegrityError(`cannot read ${label}: ${e.code}`, { cause: err });
  }
  if (e?.code === 'EEXIST' || e?.code === 'ENOSPC' || e?.code === 'EIO') {
    return new PackageIntegrityError(`cannot extract ${label}: ${e.message}`, { cause: err });
  }
  return new PackageIntegrityError(`${label} could not be read: ${e?.message ?? String(err)}`, {
    cause: err,
  });
}
