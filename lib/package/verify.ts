import { createHash, type KeyObject } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import tar from 'tar-stream';
import { MaapError, PackageIntegrityError, SignatureError, UsageError } from '../errors.ts';
import { type OnnxInfo, OnnxInspector } from '../onnx/inspect.ts';
import { decodeManifest, isSafeEntryPath, MANIFEST_PATH, type Manifest, SIGNATURE_PATH } from './manifest.ts';
import { findSigner, loadPublicKey, SIGNATURE_BYTES } from './sign.ts';
import { DEFAULT_MAX_MANIFEST_BYTES } from './tar-head.ts';

export { readManifestFromHead } from './tar-head.ts';

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

const ENTRY_KINDS: Record<string, string> = {
  link: 'a hard link',
  symlink: 'a symbolic link',
  'character-device': 'a character device',
  'block-device': 'a block device',
  directory: 'a directory',
  fifo: 'a FIFO',
};

/**
 * Streams a package (a file path or a readable) through every integrity check: the manifest first and valid,
 * each entry listed in the manifest exactly once with the listed size and SHA-256, no links, devices, absolute
 * or `..` paths, sizes within limits, the ONNX graph self-contained and matching the manifest signature, and
 * the signature (last entry) valid for a trusted key when keys are given. Memory stays flat.
 */
export async function verifyPackage(
  source: string | Readable,
  options: VerifyOptions = {},
): Promise<VerifiedPackage> {
  const label = typeof source === 'string' ? source : 'package';
  let streamError: Error | undefined;
  const onInputError = (err: Error) => {
    streamError ??= err;
    extract?.destroy(err);
  };
  let extract: tar.Extract | undefined;
  // A caller's stream may fail while the keys load: remember its error from the start.
  if (typeof source !== 'string') source.on('error', onInputError);
  const trusted = await Promise.all((options.trustedKeys ?? []).map((k) => loadPublicKey(k)));
  if (options.extractTo) await createExtractDir(options.extractTo);
  const input = typeof source === 'string' ? openFile(source) : source;
  if (typeof source === 'string') input.on('error', onInputError);
  extract = tar.extract();
  extract.on('error', (err: Error) => {
    streamError ??= err;
  });
  if (streamError) extract.destroy(streamError);
  const tail = new ArchiveTail();
  input.on('data', (chunk: Buffer) => {
    tail.push(chunk);
    options.onProgress?.(tail.bytes);
  });
  input.pipe(extract);
  try {
    const result = await readEntries(extract, trusted, options);
    if (!tail.endsWithEndOfArchive()) {
      throw new PackageIntegrityError(`${label} is truncated: the archive lacks its end-of-archive marker`);
    }
    return { ...result, bytes: tail.bytes };
  } catch (err) {
    input.destroy();
    extract.destroy();
    if (options.extractTo) await rm(options.extractTo, { recursive: true, force: true });
    // When the stream failed underneath an entry, the entry reports "destroyed": the stream's error is the cause.
    throw asIntegrityError(err instanceof MaapError || !streamError ? err : streamError, label);
  }
}

async function createExtractDir(path: string): Promise<void> {
  try {
    await mkdir(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot extract into ${path}: ${code === 'EEXIST' ? 'it already exists (give a new folder)' : code}`,
    );
  }
}

/** Remembers the last 1024 bytes of the archive: a complete tar ends with two zero blocks. */
class ArchiveTail {
  bytes = 0;
  private last: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.last =
      chunk.length >= 1024
        ? chunk.subarray(chunk.length - 1024)
        : Buffer.concat([this.last, chunk]).subarray(-1024);
  }

  endsWithEndOfArchive(): boolean {
    return this.last.length === 1024 && this.last.every((b) => b === 0);
  }
}

function openFile(path: string): Readable {
  return createReadStream(path, { highWaterMark: 1 << 20 });
}

async function readEntries(
  extract: tar.Extract,
  trusted: KeyObject[],
  options: VerifyOptions,
): Promise<Omit<VerifiedPackage, 'bytes'>> {
  const maxEntry = options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
  const maxManifest = options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
  let manifest: Manifest | undefined;
  let manifestBytes: Buffer | undefined;
  let signature: Buffer | undefined;
  const expected = new Map<string, { sha256: string; bytes: number }>();
  const seen = new Set<string>();
  const kept = options.keepInMemory ? new Map<string, Buffer>() : undefined;

  for await (const entry of extract) {
    const { name, type } = entry.header;
    const size = entry.header.size ?? 0;
    if (type !== 'file' && type !== 'contiguous-file') {
      throw new PackageIntegrityError(
        `entry "${name}" is ${ENTRY_KINDS[type ?? ''] ?? `of type ${type}`}; packages hold regular files only`,
      );
    }
    if (!isSafeEntryPath(name))
      throw new PackageIntegrityError(
        `entry "${name}" has an unsafe path (absolute, "..", or empty segments)`,
      );
    if (seen.has(name)) throw new PackageIntegrityError(`entry "${name}" appears twice`);
    if (signature)
      throw new PackageIntegrityError(
        `entry "${name}" follows ${SIGNATURE_PATH}, which must be the last entry`,
      );
    seen.add(name);

    if (!manifest) {
      if (name !== MANIFEST_PATH)
        throw new PackageIntegrityError(`the first entry must be ${MANIFEST_PATH}, found "${name}"`);
      if (size > maxManifest)
        throw new PackageIntegrityError(
          `${MANIFEST_PATH} is ${size} bytes, over the ${maxManifest}-byte limit`,
        );
      manifestBytes = await collect(entry);
      manifest = decodeManifest(manifestBytes);
      expected.set(manifest.model.path, manifest.model);
      for (const f of manifest.files) expected.set(f.path, f);
      await save(entry.header.name, manifestBytes, options.extractTo);
      continue;
    }
    if (name === SIGNATURE_PATH) {
      if (size !== SIGNATURE_BYTES)
        throw new SignatureError(
          `${SIGNATURE_PATH} is ${size} bytes; an Ed25519 signature is ${SIGNATURE_BYTES}`,
        );
      signature = await collect(entry);
      continue;
    }
    const want = expected.get(name);
    if (!want) throw new PackageIntegrityError(`entry "${name}" is not listed in the manifest`);
    if (size > maxEntry)
      throw new PackageIntegrityError(`entry "${name}" is ${size} bytes, over the ${maxEntry}-byte limit`);
    if (size !== want.bytes)
      throw new PackageIntegrityError(`entry "${name}" is ${size} bytes but the manifest says ${want.bytes}`);
    // The entry's bytes are hashed here once; the inspector only decodes them (it skips weights without copying).
    const inspector = name === manifest.model.path ? new OnnxInspector(name, { hash: false }) : undefined;
    // Kept entries go straight into one buffer of the size the header declared (checked against the manifest
    // above): no list of chunks, no second copy, and the buffer's pages are first touched while the bytes arrive.
    const into = kept ? allocateEntry(name, size) : undefined;
    const sha256 = await digest(
      name,
      entry,
      options.extractTo ? join(options.extractTo, name) : undefined,
      inspector,
      into,
    );
    if (sha256 !== want.sha256) {
      throw new PackageIntegrityError(
        `entry "${name}" has SHA-256 ${sha256} but the manifest says ${want.sha256}: the package was modified`,
      );
    }
    if (inspector) checkGraph(inspector.finish(), manifest);
    if (kept && into) kept.set(name, into);
  }

  if (!manifest || !manifestBytes) throw new PackageIntegrityError('the archive is empty: no maap.json');
  for (const path of expected.keys()) {
    if (!seen.has(path))
      throw new PackageIntegrityError(
        `entry "${path}" is listed in the manifest but missing from the package`,
      );
  }
  const id = createHash('sha256').update(manifestBytes).digest('hex');
  if (trusted.length > 0) {
    if (!signature)
      throw new SignatureError(
        `${manifest.name}@${manifest.version} is not signed, and trusted keys were given`,
      );
    const signedBy = findSigner(manifestBytes, signature, trusted);
    if (!signedBy)
      throw new SignatureError(
        `${manifest.name}@${manifest.version}: the signature does not verify with any trusted key`,
      );
    if (options.extractTo) await save(SIGNATURE_PATH, signature, options.extractTo);
    return { manifest, manifestBytes, id, signed: true, signedBy, ...(kept ? { entries: kept } : {}) };
  }
  if (signature && options.extractTo) await save(SIGNATURE_PATH, signature, options.extractTo);
  return { manifest, manifestBytes, id, signed: signature !== undefined, ...(kept ? { entries: kept } : {}) };
}

async function collect(entry: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function save(name: string, data: Buffer, dir: string | undefined): Promise<void> {
  if (!dir) return;
  const { writeFile } = await import('node:fs/promises');
  await mkdir(dirname(join(dir, name)), { recursive: true });
  await writeFile(join(dir, name), data, { flag: 'wx' });
}

function allocateEntry(name: string, size: number): Buffer {
  try {
    return Buffer.allocUnsafeSlow(size);
  } catch (err) {
    throw new PackageIntegrityError(`entry "${name}" is ${size} bytes: too large to keep in memory`, {
      cause: err,
    });
  }
}

/**
 * Streams one entry through SHA-256 (and the ONNX inspector, the extraction file, and the `into` buffer when
 * given); returns the hex digest. `into` must be exactly the entry's size: it is filled completely or this throws,
 * so that no uninitialised byte of it is ever handed out.
 */
async function digest(
  name: string,
  entry: AsyncIterable<unknown>,
  outPath: string | undefined,
  inspector: OnnxInspector | undefined,
  into: Buffer | undefined,
): Promise<string> {
  const hash = createHash('sha256');
  let filled = 0;
  let out: ReturnType<typeof createWriteStream> | undefined;
  if (outPath) {
    await mkdir(dirname(outPath), { recursive: true });
    out = createWriteStream(outPath, { flags: 'wx' });
  }
  try {
    for await (const data of entry) {
      const chunk = data as Buffer;
      hash.update(chunk);
      inspector?.feed(chunk);
      if (into) {
        if (filled + chunk.length > into.length)
          throw new PackageIntegrityError(`entry "${name}" holds more bytes than its header says`);
        into.set(chunk, filled);
      }
      filled += chunk.length;
      if (out && !out.write(chunk)) await new Promise<void>((resolve) => out?.once('drain', () => resolve()));
    }
  } finally {
    if (out) {
      out.end();
      await finished(out);
    }
  }
  if (into && filled !== into.length)
    throw new PackageIntegrityError(`entry "${name}" holds fewer bytes than its header says`);
  return hash.digest('hex');
}

function checkGraph(info: OnnxInfo, manifest: Manifest): void {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (info.opset !== manifest.model.opset || info.irVersion !== manifest.model.irVersion) {
    throw new PackageIntegrityError(`the manifest's opset/irVersion do not match ${manifest.model.path}`);
  }
  if (!same(info.inputs, manifest.signature.inputs) || !same(info.outputs, manifest.signature.outputs)) {
    throw new PackageIntegrityError(
      `the manifest's signature does not match the inputs and outputs of ${manifest.model.path}`,
    );
  }
}

function asIntegrityError(err: unknown, label: string): Error {
  if (err instanceof MaapError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT' || e?.code === 'EISDIR' || e?.code === 'EACCES') {
    return new PackageIntegrityError(`cannot read ${label}: ${e.code}`, { cause: err });
  }
  if (e?.code === 'EEXIST')
    return new PackageIntegrityError(`cannot extract ${label}: ${e.message}`, { cause: err });
  const message = e?.message ?? String(err);
  if (/unexpected end|premature close|truncat/i.test(message)) {
    return new PackageIntegrityError(
      `${label} is truncated: the archive ends before its last entry is complete`,
      { cause: err },
    );
  }
  if (/invalid tar header|checksum/i.test(message)) {
    return new PackageIntegrityError(`${label} is not a valid maap package (tar): ${message}`, {
      cause: err,
    });
  }
  return new PackageIntegrityError(`${label} could not be read: ${message}`, { cause: err });
}
