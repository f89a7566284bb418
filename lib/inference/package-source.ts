/**
 * Where a model package comes from: a file, bytes already in memory, or a registry reference. Every source is
 * streamed through `verifyPackage` (hashes, structure, ONNX graph, signature when trusted keys are given) and
 * kept in memory: nothing is written to disk, as on Lambda.
 */
import type { KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import { PackageIntegrityError } from '../errors.ts';
import { MODEL_PATH } from '../package/manifest-rules.ts';
import { type VerifiedPackage, verifyPackage } from '../package/verify.ts';
import { type ModelRef, parseModelRef } from '../registry/ref-names.ts';
import type { Store } from '../registry/store.ts';
import type { Resolved } from '../registry/types.ts';

/**
 * What loading a model needs from a registry: resolve a spec to a key, read that key. A `Registry` is one; the
 * Lambda predictor passes a lighter one that resolves pinned versions without loading the registry code.
 */
export interface PackageRegistry {
  readonly uri: string;
  readonly store: Pick<Store, 'get'>;
  resolve(name: string, spec?: string): Promise<Resolved>;
}

/** A registry reference: `fraud`, `fraud@1.4.0`, `fraud@^2`, `fraud@production`, in a registry (URI or opened). */
export interface RegistrySource {
  /** An opened registry (a `Registry`), or its URI (`s3://bucket/prefix`, `file:///path`, a folder). */
  readonly registry: PackageRegistry | string;
  readonly ref: string | ModelRef;
}

/** A package file path, the bytes of a package, or a registry reference. */
export type ModelSource = string | Uint8Array | RegistrySource;

/** A verified package with its model bytes in memory. */
export interface PackageInMemory {
  readonly verified: VerifiedPackage;
  /** The bytes of model.onnx. */
  readonly model: Buffer;
  /** Where the package came from, for messages: a path, "bytes", or `name@version (via alias) from <registry>`. */
  readonly origin: string;
}

/** Reads and verifies a package from any source, keeping its entries in memory. */
export async function readPackage(
  source: ModelSource,
  trustedKeys?: readonly (string | KeyObject)[],
): Promise<PackageInMemory> {
  const options = { keepInMemory: true, ...(trustedKeys?.length ? { trustedKeys } : {}) } as const;
  if (typeof source === 'string') {
    return inMemory(await verifyPackage(source, options), source);
  }
  if (source instanceof Uint8Array) {
    const bytes = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    return inMemory(await verifyPackage(Readable.from([bytes]), options), 'package bytes');
  }
  return fromRegistry(source, options);
}

async function fromRegistry(
  source: RegistrySource,
  options: { keepInMemory: true; trustedKeys?: readonly (string | KeyObject)[] },
): Promise<PackageInMemory> {
  const ref = typeof source.ref === 'string' ? parseModelRef(source.ref) : source.ref;
  if (typeof source.registry !== 'string') return fromOpened(source.registry, ref, options);
  // Loaded only for a registry URI: callers that pass an opened registry (the Lambda loader) never need it.
  const registry = (await import('../registry/open.ts')).openRegistry(source.registry);
  try {
    return await fromOpened(registry, ref, options);
  } finally {
    await registry.close();
  }
}

async function fromOpened(
  registry: PackageRegistry,
  ref: ModelRef,
  options: { keepInMemory: true; trustedKeys?: readonly (string | KeyObject)[] },
): Promise<PackageInMemory> {
  const target = await registry.resolve(ref.name, ref.spec);
  const verified = await verifyPackage(await registry.store.get(target.key), options);
  const { name, version } = verified.manifest;
  if (name !== target.name || version !== target.version) {
    throw new PackageIntegrityError(
      `${target.key} in ${registry.uri} holds ${name}@${version}, not ${target.name}@${target.version}`,
    );
  }
  const via = target.alias ? ` (alias ${target.alias})` : '';
  return inMemory(verified, `${name}@${version}${via} from ${registry.uri}`);
}

function inMemory(verified: VerifiedPackage, origin: string): PackageInMemory {
  const model = verified.entries?.get(MODEL_PATH);
  if (!model) throw new PackageIntegrityError(`${origin}: ${MODEL_PATH} was not kept in memory`);
  return { verified, model, origin };
}
