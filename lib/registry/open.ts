import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.ts';
import { FileStore } from './file-store.ts';
import { Registry } from './registry.ts';
import { S3Store, type S3StoreOptions } from './s3-store.ts';

/** The embedded default registry, relative to the working directory. */
export const DEFAULT_REGISTRY = './.maap/registry';

export interface OpenRegistryOptions extends S3StoreOptions {
  /** Base for relative folder paths. @default process.cwd() */
  readonly cwd?: string;
  /** Where `MAAP_REGISTRY` and the endpoint variables are read. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Opens a registry: `uri` if given, else `MAAP_REGISTRY`, else `./.maap/registry`. A URI is `s3://bucket/prefix`,
 * `file:///abs/path` or a plain path. For S3 the endpoint is `options.endpoint`, else `MAAP_S3_ENDPOINT`,
 * `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`. Nothing is contacted (and the AWS SDK is not loaded) until the
 * first operation.
 */
export function openRegistry(uri?: string, options: OpenRegistryOptions = {}): Registry {
  const env = options.env ?? process.env;
  const location = nonEmpty(uri) ?? nonEmpty(env.MAAP_REGISTRY) ?? DEFAULT_REGISTRY;
  if (location.startsWith('s3://')) {
    const endpoint =
      nonEmpty(options.endpoint) ??
      nonEmpty(env.MAAP_S3_ENDPOINT) ??
      nonEmpty(env.AWS_ENDPOINT_URL_S3) ??
      nonEmpty(env.AWS_ENDPOINT_URL);
    return new Registry(new S3Store(location, { ...options, ...(endpoint ? { endpoint } : {}) }));
  }
  // A mistyped S3 URI (s3:/bucket, S3://bucket) is not a folder named "s3:" (whose package would be "not found").
  if (/^s3:/i.test(location)) {
    throw new UsageError(
      `invalid registry "${location}": expected s3://bucket[/prefix]: did you mean s3://${location.replace(/^s3:\/*/i, '')}? (a folder whose name starts with s3: is ./${location})`,
    );
  }
  return new Registry(new FileStore(folderOf(location, options.cwd ?? process.cwd())));
}

function folderOf(location: string, cwd: string): string {
  if (/^file:/i.test(location)) {
    // file:relative would resolve against the filesystem's root: only the absolute form is taken.
    if (!/^file:\/\//i.test(location)) {
      throw new UsageError(`invalid registry URI "${location}": expected file:///absolute/path`);
    }
    try {
      return fileURLToPath(location);
    } catch (err) {
      throw new UsageError(`invalid registry URI "${location}": expected file:///absolute/path`, {
        cause: err,
      });
    }
  }
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(location)) {
    throw new UsageError(
      `unsupported registry URI "${location}": use s3://bucket/prefix, file:///path or a folder path`,
    );
  }
  return resolve(cwd, location);
}

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v ? v : undefined;
}
