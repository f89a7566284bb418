import { createHash, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import semver from 'semver';
import { MaapError, PackageIntegrityError, UsageError } from '../errors.ts';
import { defaultRuntimeRange } from '../onnx/compat.ts';
import { inspectOnnx } from '../onnx/inspect.ts';
import { createAtomicFile } from './atomic-file.ts';
import { checkExample } from './example.ts';
import {
  encodeManifest,
  formatIssues,
  isSafeEntryPath,
  type Lineage,
  MANIFEST_PATH,
  type Manifest,
  MODEL_PATH,
  manifestSchema,
  NAME_PATTERN,
  SIGNATURE_PATH,
} from './manifest.ts';
import { loadPrivateKey, signManifest } from './sign.ts';
import { TarWriter } from './tar-writer.ts';

export interface PackOptions {
  /** Model name, `[a-z0-9][a-z0-9-]{0,62}`. */
  readonly name: string;
  /** Semantic version, e.g. `1.4.0`. */
  readonly version: string;
  /** Output file. @default `<name>-<version>.maap` in the current directory */
  readonly out?: string;
  /** The smoke test: a JSON file path or the parsed value (`{ request: { inputs }, outputs, tolerance? }`). */
  readonly example?: string | unknown;
  /** Training metrics: a JSON file path or an object of numbers. */
  readonly metrics?: string | Record<string, number>;
  /** Training parameters, recorded in `lineage.params`: a JSON file path or an object. */
  readonly params?: string | Record<string, unknown>;
  /** Class names: a JSON file path or an array of strings. */
  readonly labels?: string | string[];
  /** Per-feature training statistics: a JSON file path or an object. */
  readonly stats?: string | Record<string, unknown>;
  /** Other files to ship (tokenizer, vocabulary...), stored under their base names. */
  readonly files?: readonly string[];
  /** Ed25519 private key (PEM text, PEM file path or KeyObject) to sign the manifest with. */
  readonly signKey?: string | KeyObject;
  /** Where the model came from. */
  readonly lineage?: Lineage;
  /** Override of `requires.onnxruntime`. @default - derived from the model's opset */
  readonly requiresOnnxruntime?: string;
  /** Memory the model needs to run, recorded in `requires.memoryMb`. */
  readonly memoryMb?: number;
  /** @default - now */
  readonly createdAt?: Date;
  /** Called with bytes processed so far and the total (the model is read twice: inspect, then copy). */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface PackResult {
  readonly path: string;
  readonly manifest: Manifest;
  /** SHA-256 of the manifest bytes: the package identity. */
  readonly id: string;
  readonly bytes: number;
  readonly signed: boolean;
}

/**
 * Packs an ONNX model into `<name>-<version>.maap`: reads the signature, opset and producer from the graph,
 * hashes every file, writes maap.json first, then model.onnx, the files, and maap.sig when a key is given.
 * The output appears atomically (written to a temporary file, then renamed); on failure nothing is left.
 */
export async function packModel(modelPath: string, options: PackOptions): Promise<PackResult> {
  if (!NAME_PATTERN.test(options.name)) {
    throw new UsageError(
      `name "${options.name}" is invalid: use lowercase letters, digits and dashes, starting with a letter or digit (max 63)`,
    );
  }
  if (semver.valid(options.version) !== options.version) {
    throw new UsageError(`version "${options.version}" is not a semantic version such as 1.4.0`);
  }
  const modelStat = await statFile(modelPath, 'model');
  const extra = await Promise.all((options.files ?? []).map((f) => describeFile(f)));
  const total = modelStat.size * 2 + extra.reduce((n, f) => n + f.bytes * 2, 0);
  let done = 0;
  const progress = (n: number) => {
    done += n;
    options.onProgress?.(done, total);
  };

  const info = await inspectOnnx(countingStream(modelPath, progress), modelPath);
  const signKey = options.signKey ? await loadPrivateKey(options.signKey) : undefined;
  const createdAt = options.createdAt ?? new Date();
  const params = options.params ? await jsonInput(options.params, 'params') : undefined;
  const draft = {
    schemaVersion: 1,
    name: options.name,
    version: options.version,
    createdAt: createdAt.toISOString(),
    model: {
      path: MODEL_PATH,
      sha256: info.sha256,
      bytes: info.bytes,
      opset: info.opset,
      irVersion: info.irVersion,
      producer: info.producer,
      ...(Object.keys(info.domains).length ? { domains: info.domains } : {}),
    },
    signature: { inputs: info.inputs, outputs: info.outputs },
    files: extra.map(({ path, sha256, bytes }) => ({ path, sha256, bytes })),
    requires: {
      onnxruntime: options.requiresOnnxruntime ?? defaultRuntimeRange(info.opset),
      opset: info.opset,
      ...(options.memoryMb ? { memoryMb: options.memoryMb } : {}),
    },
    ...(options.example ? { example: await jsonInput(options.example, 'example') } : {}),
    metrics: options.metrics ? await jsonInput(options.metrics, 'metrics') : {},
    lineage: { ...options.lineage, ...(params ? { params } : {}) },
    ...(options.labels ? { labels: await jsonInput(options.labels, 'labels') } : {}),
    ...(options.stats ? { stats: await jsonInput(options.stats, 'stats') } : {}),
  };
  const parsed = manifestSchema.safeParse(draft);
  if (!parsed.success) throw new UsageError(`cannot pack: ${formatIssues(parsed.error)}`);
  const manifest = parsed.data;
  if (manifest.example) checkExample(manifest.example, manifest.signature);
  const manifestBytes = encodeManifest(manifest);

  const out = resolve(options.out ?? `${options.name}-${options.version}.maap`);
  const file = await createAtomicFile(out);
  try {
    const archive = new TarWriter(file.stream, createdAt);
    await archive.addBuffer(MANIFEST_PATH, manifestBytes);
    await addFile(archive, MODEL_PATH, modelPath, info.bytes, progress);
    for (const f of extra) await addFile(archive, f.path, f.source, f.bytes, progress);
    if (signKey) await archive.addBuffer(SIGNATURE_PATH, signManifest(manifestBytes, signKey));
    await archive.finish();
    // A package file is a build output that `maap pack` can make again: the rename is atomic, and the
    // registry's push (which fsyncs what it publishes) is where durability matters. Skipping the fsync here
    // saves a full flush of the model to disk.
    await file.commit({ durable: false });
  } catch (err) {
    await file.discard();
    throw err instanceof MaapError
      ? err
      : new PackageIntegrityError(`cannot write ${out}: ${(err as Error).message}`, { cause: err });
  }
  const id = createHash('sha256').update(manifestBytes).digest('hex');
  return { path: out, manifest, id, bytes: (await stat(out)).size, signed: signKey !== undefined };
}

async function statFile(path: string, what: string) {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new UsageError(`${what} ${path} is not a regular file`);
    return s;
  } catch (err) {
    if (err instanceof MaapError) throw err;
    throw new UsageError(
      `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

async function describeFile(source: string) {
  const s = await statFile(source, 'file');
  const path = basename(source);
  if (!isSafeEntryPath(path) || [MANIFEST_PATH, MODEL_PATH, SIGNATURE_PATH].includes(path)) {
    throw new UsageError(`file ${source} cannot be packed under the reserved or unsafe name "${path}"`);
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(source)) hash.update(chunk as Buffer);
  return { source, path, bytes: s.size, sha256: hash.digest('hex') };
}

/** Reads a JSON option: a value is used as is; a string is inline JSON when it starts with `{` or `[`, else a
 * file path. */
async function jsonInput<T>(value: string | T, what: string): Promise<T | unknown> {
  if (typeof value !== 'string') return value;
  if (/^\s*[[{]/.test(value)) {
    try {
      return JSON.parse(value);
    } catch (err) {
      throw new UsageError(`${what} is not valid JSON: ${(err as Error).message}`);
    }
  }
  let text: string;
  try {
    text = await readFile(value, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read ${what} file ${value}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} file ${value} is not valid JSON: ${(err as Error).message}`);
  }
}

function countingStream(path: string, progress: (n: number) => void) {
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  stream.on('data', (chunk) => progress(chunk.length));
  return stream;
}

/**
 * Copies a file into the archive. It was hashed in the first pass; hashing it again would halve packing
 * speed, so a change in between is caught by its identity instead (inode, size, modification and change time).
 */
async function addFile(
  archive: TarWriter,
  name: string,
  path: string,
  size: number,
  progress: (n: number) => void,
) {
  const before = await stat(path, { bigint: true });
  await archive.addFile(name, path, size, progress);
  const after = await stat(path, { bigint: true });
  const same = (['ino', 'size', 'mtimeNs', 'ctimeNs'] as const).every((k) => before[k] === after[k]);
  if (!same) throw new PackageIntegrityError(`${path} changed while it was being packed; pack again`);
}
