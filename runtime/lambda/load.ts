/**
 * The model a Lambda predictor serves, from its environment: `MAAP_REGISTRY` (`s3://bucket/prefix` or a folder),
 * `MAAP_MODEL` and `MAAP_MODEL_VERSION` (an exact version, as the deployer pins it, or an alias). On S3 the
 * package is one light signed GET (`lib/registry/s3-get.ts`, no AWS SDK) streamed straight into the verifier
 * and kept in memory; a folder registry reads the file.
 */
import { type MaapError, UsageError } from '../../lib/errors.ts';
import { type LoadedModel, type LoadOptions, loadModel } from '../../lib/inference/model.ts';
import { ModelUnavailableError } from '../../lib/inference/model-errors.ts';
import type { PackageRegistry } from '../../lib/inference/package-source.ts';
import { isCanonicalVersion } from '../../lib/package/semver-lite.ts';
import { checkModelName, LATEST, parseModelRef } from '../../lib/registry/ref-names.ts';
import { type S3GetConfig, s3Get, s3Head } from '../../lib/registry/s3-get.ts';
import { parseS3Uri } from '../../lib/registry/s3-store.ts';
import type { ObjectInfo, Store } from '../../lib/registry/store.ts';
import type { Resolved } from '../../lib/registry/types.ts';
import { initS3Config, type Prefetch } from './prefetch.ts';

/** What the environment asks the predictor to serve. */
export interface ModelConfig {
  readonly registry: string;
  readonly name: string;
  /** Exact version or alias; `undefined` means the highest stable version (folder registries only). */
  readonly spec?: string;
}

/**
 * Reads the model configuration. Throws ModelUnavailableError (503: "not configured") when `MAAP_MODEL` is unset,
 * UsageError when a value is malformed. `MAAP_MODEL` may also carry the spec (`fraud@1.4.0`).
 */
export function modelConfig(env: NodeJS.ProcessEnv): ModelConfig {
  const model = env.MAAP_MODEL?.trim();
  const registry = env.MAAP_REGISTRY?.trim();
  if (!model) {
    throw new ModelUnavailableError(
      'no model configured: set MAAP_MODEL (and MAAP_MODEL_VERSION, MAAP_REGISTRY) in the function environment',
    );
  }
  if (!registry) throw new ModelUnavailableError(`MAAP_MODEL is ${model} but MAAP_REGISTRY is not set`);
  const ref = parseModelRef(model);
  const spec = env.MAAP_MODEL_VERSION?.trim() || ref.spec;
  return { registry, name: checkModelName(ref.name), ...(spec ? { spec } : {}) };
}

/** Loads, verifies, smoke-tests and warms up the configured model. Errors are maap errors naming the cause. */
export async function loadConfiguredModel(
  env: NodeJS.ProcessEnv,
  options: LoadOptions = {},
  prefetch?: Prefetch,
): Promise<LoadedModel> {
  const config = modelConfig(env);
  const trustedKeys = options.trustedKeys ?? trustedKeysFromEnv(env);
  const store = config.registry.startsWith('s3://')
    ? new S3ObjectStore(config.registry, initS3Config(env), prefetch)
    : (await import('../../lib/registry/open.ts')).openRegistry(config.registry, { env }).store;
  const registry = new PinnedRegistry(store);
  return loadModel(
    { registry, ref: { name: config.name, ...(config.spec ? { spec: config.spec } : {}) } },
    { ...options, ...(trustedKeys.length ? { trustedKeys } : {}) },
  );
}

/** `MAAP_TRUSTED_KEYS`: PEM public keys pasted inline, or comma-separated PEM file paths. */
export function trustedKeysFromEnv(env: NodeJS.ProcessEnv): string[] {
  const raw = env.MAAP_TRUSTED_KEYS?.trim();
  if (!raw) return [];
  if (raw.includes('-----BEGIN')) {
    return raw.match(/-----BEGIN [^-]+-----[\s\S]*?-----END [^-]+-----/g) ?? [];
  }
  return raw
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
}

/**
 * A registry that resolves an exact version or an alias without listing: an exact version is its key, an alias
 * one small read. Ranges and `latest` need a listing, which the S3 object store refuses with a clear message.
 * The registry code (and the alias document's schema) loads only when a spec needs it: a pinned version, what
 * the deployer configures, resolves with none of it on the cold-start path.
 */
export class PinnedRegistry implements PackageRegistry {
  constructor(readonly store: Store) {}

  get uri(): string {
    return this.store.uri;
  }

  async resolve(name: string, spec: string = LATEST): Promise<Resolved> {
    checkModelName(name);
    // `Registry.versionKey`, without loading the Registry or semver: an exact version in canonical form (what the
    // deployer pins) is its key.
    if (isCanonicalVersion(spec)) return { name, version: spec, key: `${name}/${spec}.maap`, via: 'range' };
    const { classifySpec, isAliasName } = await import('../../lib/registry/ref.ts');
    const kind = classifySpec(spec);
    const exact = kind === 'range' ? (await import('semver')).default.valid(spec) : null;
    if (exact) return { name, version: exact, key: `${name}/${exact}.maap`, via: 'range' };
    if (kind === 'alias' && isAliasName(spec)) {
      const { AliasBook } = await import('../../lib/registry/aliases.ts');
      const { version } = await new AliasBook(this.store).get(name, spec);
      return { name, version, key: `${name}/${version}.maap`, via: 'alias', alias: spec };
    }
    const { Registry } = await import('../../lib/registry/registry.ts');
    return new Registry(this.store).resolve(name, spec);
  }
}

/** The read side of an S3 registry over single signed requests (one maybe already in flight); no list, no write. */
export class S3ObjectStore implements Store {
  readonly uri: string;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(
    uri: string,
    private readonly config: S3GetConfig,
    private readonly prefetch?: Prefetch,
  ) {
    const { bucket, prefix } = parseS3Uri(uri);
    this.bucket = bucket;
    this.prefix = prefix ? `${prefix}/` : '';
    this.uri = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
  }

  async get(key: string) {
    const prefetched = this.prefetch?.take(this.uri, key);
    return prefetched ? await prefetched : (await s3Get(this.bucket, this.prefix + key, this.config)).body;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const info = await s3Head(this.bucket, this.prefix + key, this.config);
    return info ? { key, ...info } : undefined;
  }

  list(): Promise<ObjectInfo[]> {
    return Promise.reject(
      new UsageError(
        `the Lambda predictor reads one object from ${this.uri} and cannot list it: set MAAP_MODEL_VERSION to an exact version or an alias (the deployer pins one)`,
      ),
    );
  }

  putIfAbsent(): Promise<boolean> {
    return Promise.reject(this.readOnly());
  }

  put(): Promise<void> {
    return Promise.reject(this.readOnly());
  }

  delete(): Promise<void> {
    return Promise.reject(this.readOnly());
  }

  async close(): Promise<void> {}

  private readOnly(): MaapError {
    return new UsageError(`${this.uri} is read-only for the predictor`);
  }
}
