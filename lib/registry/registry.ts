import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import semver from 'semver';
import { NotFoundError, PackageIntegrityError, UsageError, VersionExistsError } from '../errors.ts';
import type { Manifest } from '../package/manifest.ts';
import { readManifestFromHead } from '../package/tar-head.ts';
import { AliasBook } from './aliases.ts';
import { mapLimit, readAll } from './io.ts';
import { checkModelName, checkVersion, classifySpec, isAliasName, LATEST } from './ref.ts';
import type { ObjectInfo, Store } from './store.ts';
import { downloadVerified, unchangedStream, verifyFile } from './transfer.ts';
import type {
  AliasRecord,
  AliasUpdate,
  ListingProblem,
  ModelInfo,
  PullResult,
  PushResult,
  Resolved,
  TransferOptions,
  VersionInfo,
} from './types.ts';

/** First ranged read for a manifest; the manifest is the first tar entry, so this is nearly always enough. */
const HEAD_BYTES = 64 * 1024;
/** Largest manifest head we fetch (the verifier's default manifest limit plus tar headers). */
const MAX_HEAD_BYTES = 2 * 1024 * 1024;
const VERSION_KEY = /^([a-z0-9][a-z0-9-]{0,62})\/([^/]+)\.maap$/;

/** A model registry over any Store: the operations are written once here for every backend. */
export class Registry {
  private readonly aliasBook: AliasBook;

  constructor(readonly store: Store) {
    this.aliasBook = new AliasBook(store);
  }

  /** The registry URI: an absolute folder or `s3://bucket/prefix`. */
  get uri(): string {
    return this.store.uri;
  }

  static versionKey(name: string, version: string): string {
    return `${name}/${version}.maap`;
  }

  /** Verifies a package file, then uploads exactly the verified bytes. Refuses an existing version. */
  async push(pkgPath: string, options: TransferOptions = {}): Promise<PushResult> {
    const path = resolvePath(pkgPath);
    const st = await stat(path).catch(() => {
      throw new NotFoundError(`package file ${pkgPath} not found`);
    });
    if (!st.isFile()) throw new UsageError(`${pkgPath} is not a file`);
    const total = st.size;
    const report = (phase: 'verify' | 'upload') => (transferred: number) =>
      options.onProgress?.({ phase, transferred, total });

    const { verified, identity } = await verifyFile(path, {
      trustedKeys: options.trustedKeys,
      onProgress: report('verify'),
    });
    const { name, version } = verified.manifest;
    const key = Registry.versionKey(name, version);
    const exists = () =>
      new VersionExistsError(
        `${name}@${version} already exists in ${this.uri}: versions are immutable, bump the version`,
      );
    if (await this.store.head(key)) throw exists();
    const written = await this.store.putIfAbsent(key, unchangedStream(path, identity), {
      onProgress: report('upload'),
      contentType: 'application/x-tar',
    });
    if (!written) throw exists();
    return {
      name,
      version,
      key,
      registry: this.uri,
      bytes: verified.bytes,
      id: verified.id,
      signed: verified.signed,
      ...(verified.signedBy ? { signedBy: verified.signedBy } : {}),
    };
  }

  /** Models (all, or the one named) with their versions, manifests and aliases. */
  async list(name?: string): Promise<ModelInfo[]> {
    if (name !== undefined) checkModelName(name);
    const objects = await this.store.list(name === undefined ? '' : `${name}/`);
    const byModel = new Map<string, { version: string; object: ObjectInfo }[]>();
    for (const object of objects) {
      const parsed = parseVersionKey(object.key);
      if (!parsed || (name !== undefined && parsed.name !== name)) continue;
      const list = byModel.get(parsed.name) ?? [];
      list.push({ version: parsed.version, object });
      byModel.set(parsed.name, list);
    }
    if (name !== undefined && !byModel.has(name)) throw this.modelNotFound(name);
    const names = [...byModel.keys()].sort();
    return mapLimit(names, 4, async (model) => {
      const entries = (byModel.get(model) ?? []).sort((a, b) => semver.compare(a.version, b.version));
      const problems: ListingProblem[] = [];
      // One unreadable object must not hide the rest of the registry: it is reported, and skipped.
      const described = await mapLimit(entries, 8, (e) =>
        this.describe(model, e.version, e.object).catch((err: unknown) => {
          if (!(err instanceof PackageIntegrityError)) throw err;
          problems.push({ key: e.object.key, error: err.message });
          return undefined;
        }),
      );
      const versions = described.filter((v): v is VersionInfo => v !== undefined);
      const aliases = await this.aliasBook.list(model, objects, problems);
      return { name: model, versions, aliases, problems };
    });
  }

  /** Every version of a model, ascending by semver (empty when the model does not exist). */
  async versions(name: string): Promise<string[]> {
    checkModelName(name);
    const objects = await this.store.list(`${name}/`);
    return objects
      .map((o) => parseVersionKey(o.key))
      .filter((p): p is { name: string; version: string } => p?.name === name)
      .map((p) => p.version)
      .sort(semver.compare);
  }

  /** One version's details, read with a ranged GET of the package head. */
  async version(name: string, version: string): Promise<VersionInfo> {
    checkModelName(name);
    const v = checkVersion(version);
    const object = await this.store.head(Registry.versionKey(name, v));
    if (!object) throw new NotFoundError(`${name}@${v} not found in ${this.uri}`);
    return this.describe(name, v, object);
  }

  /**
   * Resolves a spec to one stored version: an exact version or a semver range (`^2`, `>=1.2 <2`: the highest
   * match), `latest` (the highest non-prerelease version), or an alias name.
   */
  async resolve(name: string, spec: string = LATEST): Promise<Resolved> {
    checkModelName(name);
    const kind = classifySpec(spec);
    if (kind === 'alias' && !isAliasName(spec)) {
      throw new UsageError(`"${spec}" is neither a version, a semver range, "${LATEST}" nor an alias name`);
    }
    const versions = await this.versions(name);
    if (versions.length === 0) throw this.modelNotFound(name);
    const found = (version: string, alias?: string): Resolved => ({
      name,
      version,
      key: Registry.versionKey(name, version),
      via: kind,
      ...(alias ? { alias } : {}),
    });
    if (kind === 'latest') {
      const stable = versions.filter((v) => semver.prerelease(v) === null);
      const latest = stable[stable.length - 1];
      if (!latest) {
        throw new NotFoundError(
          `${name} has only prerelease versions (${shortList(versions)}); name one explicitly`,
        );
      }
      return found(latest);
    }
    if (kind === 'range') {
      const best = semver.maxSatisfying(versions, spec);
      if (!best)
        throw new NotFoundError(
          `no version of ${name} satisfies "${spec}" (available: ${shortList(versions)})`,
        );
      return found(best);
    }
    const target = await this.aliasBook.get(name, spec);
    if (!versions.includes(target.version)) {
      throw new NotFoundError(
        `alias ${name}@${spec} points to ${target.version}, which is not in ${this.uri}`,
      );
    }
    return found(target.version, spec);
  }

  /**
   * Downloads a version to `outPath` (default `./<name>-<version>.maap`), verifying the same bytes as they are
   * written. The file appears only once verification succeeded; nothing is left behind otherwise.
   */
  async pull(
    name: string,
    spec: string = LATEST,
    outPath?: string,
    options: TransferOptions = {},
  ): Promise<PullResult> {
    const target = await this.resolve(name, spec);
    const object = await this.store.head(target.key);
    if (!object) throw new NotFoundError(`${name}@${target.version} not found in ${this.uri}`);
    const out = resolvePath(outPath ?? `${name}-${target.version}.maap`);
    const { verified, bytes } = await downloadVerified(() => this.store.get(target.key), out, {
      trustedKeys: options.trustedKeys,
      onProgress: (transferred) =>
        options.onProgress?.({ phase: 'download', transferred, total: object.size }),
      accept: (m) => {
        if (m.name !== name || m.version !== target.version) {
          throw new PackageIntegrityError(
            `${target.key} in ${this.uri} holds ${m.name}@${m.version}, not ${name}@${target.version}`,
          );
        }
      },
    });
    return {
      name,
      version: target.version,
      path: out,
      bytes,
      id: verified.id,
      signed: verified.signed,
      ...(verified.signedBy ? { signedBy: verified.signedBy } : {}),
      manifest: verified.manifest,
      ...(target.alias ? { alias: target.alias } : {}),
    };
  }

  getAlias(name: string, alias: string): Promise<AliasRecord> {
    return this.aliasBook.get(checkModelName(name), alias);
  }

  /** Points an alias at an existing version (exact semver). */
  async setAlias(name: string, alias: string, version: string): Promise<AliasUpdate> {
    checkModelName(name);
    const v = checkVersion(version);
    return this.aliasBook.set(name, alias, v, async () => {
      if (!(await this.store.head(Registry.versionKey(name, v)))) {
        throw new NotFoundError(
          `${name}@${v} not found in ${this.uri}: push it before pointing an alias at it`,
        );
      }
    });
  }

  listAliases(name: string): Promise<AliasRecord[]> {
    return this.aliasBook.list(checkModelName(name));
  }

  close(): Promise<void> {
    return this.store.close();
  }

  /** Reads the manifest of a stored package from its first bytes. */
  async manifest(key: string): Promise<{ manifest: Manifest; manifestBytes: Buffer }> {
    let length = HEAD_BYTES;
    for (;;) {
      const head = await readAll(await this.store.get(key, { range: { start: 0, end: length - 1 } }));
      let parsed: ReturnType<typeof readManifestFromHead>;
      try {
        parsed = readManifestFromHead(head);
      } catch (err) {
        if (err instanceof PackageIntegrityError) {
          throw new PackageIntegrityError(`${key} in ${this.uri}: ${err.message}`, { cause: err });
        }
        throw err;
      }
      if ('manifest' in parsed) return parsed;
      if (head.length < length || parsed.needed <= head.length || parsed.needed > MAX_HEAD_BYTES) {
        throw new PackageIntegrityError(
          `${key} in ${this.uri}: cannot read the manifest (truncated or oversized)`,
        );
      }
      length = parsed.needed;
    }
  }

  private async describe(name: string, version: string, object: ObjectInfo): Promise<VersionInfo> {
    const { manifest, manifestBytes } = await this.manifest(object.key);
    if (manifest.name !== name || manifest.version !== version) {
      throw new PackageIntegrityError(
        `${object.key} in ${this.uri} holds ${manifest.name}@${manifest.version}`,
      );
    }
    return {
      name,
      version,
      key: object.key,
      size: object.size,
      createdAt: manifest.createdAt,
      pushedAt: object.mtime,
      metrics: manifest.metrics,
      id: createHash('sha256').update(manifestBytes).digest('hex'),
      manifest,
    };
  }

  private modelNotFound(name: string): NotFoundError {
    return new NotFoundError(`model ${name} not found in ${this.uri}`);
  }
}

function parseVersionKey(key: string): { name: string; version: string } | undefined {
  const m = VERSION_KEY.exec(key);
  if (!m?.[1] || !m[2] || semver.valid(m[2]) !== m[2]) return undefined;
  return { name: m[1], version: m[2] };
}

function shortList(versions: readonly string[]): string {
  return versions.length > 8 ? `..., ${versions.slice(-8).join(', ')}` : versions.join(', ');
}
