import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { MaapError, NotFoundError, RegistryError, UsageError } from '../errors.ts';
import {
  checkKey,
  type GetOptions,
  isHiddenKey,
  type ObjectInfo,
  type PutOptions,
  type Store,
} from './store.ts';

type S3Module = typeof import('@aws-sdk/client-s3');

export interface S3StoreOptions {
  /** AWS region. Default: the SDK's chain (AWS_REGION, profile); `us-east-1` with a custom endpoint. */
  readonly region?: string;
  /** Endpoint of an S3-compatible server (MinIO, s3rver, ...). */
  readonly endpoint?: string;
  /** Path-style addressing (`endpoint/bucket/key`). Default: true with a custom endpoint. */
  readonly forcePathStyle?: boolean;
  /** Static credentials. Default: the SDK's default provider chain (env, profile, SSO, instance role, ...). */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Size of a multipart upload part; packages larger than this go up in parts. @default 8 MiB (min 5 MiB; 10,000 parts make 80 GB) */
  readonly partSize?: number;
  /** Parts uploaded concurrently. @default 4 */
  readonly queueSize?: number;
  /** Send `If-None-Match: *` so S3 itself refuses to overwrite a version. Turn off for servers that reject it. */
  readonly conditionalWrites?: boolean;
}

/** Splits `s3://bucket/some/prefix/` into bucket and prefix (no leading or trailing slash). */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  const bucket = match?.[1];
  if (!match || !bucket || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UsageError(`invalid S3 registry URI "${uri}": expected s3://bucket[/prefix]`);
  }
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix !== '') checkKey(prefix);
  return { bucket, prefix };
}

/** A registry in an S3 bucket (or an S3-compatible server). The AWS SDK is loaded on first use only. */
export class S3Store implements Store {
  readonly uri: string;
  readonly bucket: string;
  private readonly prefix: string;
  private sdk?: Promise<{ s3: S3Module; client: S3Client }>;

  constructor(
    uri: string,
    private readonly options: S3StoreOptions = {},
  ) {
    const { bucket, prefix } = parseS3Uri(uri);
    this.bucket = bucket;
    this.prefix = prefix ? `${prefix}/` : '';
    this.uri = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
  }

  private load(): Promise<{ s3: S3Module; client: S3Client }> {
    this.sdk ??= import('@aws-sdk/client-s3').then((s3) => {
      const { endpoint, credentials } = this.options;
      const region = this.options.region ?? (endpoint ? (process.env.AWS_REGION ?? 'us-east-1') : undefined);
      const client = new s3.S3Client({
        ...(region ? { region } : {}),
        ...(endpoint ? { endpoint } : {}),
        ...(credentials ? { credentials } : {}),
        forcePathStyle: this.options.forcePathStyle ?? endpoint !== undefined,
        // Plain (not aws-chunked) streaming uploads: S3-compatible servers store the chunk framing otherwise.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
      return { s3, client };
    });
    return this.sdk;
  }

  private fullKey(key: string): string {
    return this.prefix + checkKey(key);
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const { s3, client } = await this.load();
    const range = options.range ? `bytes=${options.range.start}-${options.range.end ?? ''}` : undefined;
    try {
      const out = await client.send(
        new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), Range: range }),
      );
      if (!out.Body) return Readable.from([]);
      return out.Body as Readable;
    } catch (err) {
      if (range && errorName(err) === 'InvalidRange') return Readable.from([]);
      throw this.mapError(err, 'read', key);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const { s3, client } = await this.load();
    try {
      const out = await client.send(
        new s3.HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }),
      );
      return { key, size: out.ContentLength ?? 0, mtime: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (errorName(err) === 'NotFound' || errorName(err) === 'NoSuchKey') return undefined;
      throw this.mapError(err, 'inspect', key);
    }
  }

  async putIfAbsent(key: string, body: Readable, options: PutOptions = {}): Promise<boolean> {
    try {
      const { client } = await this.load();
      if (await this.head(key)) return false;
      const { Upload } = await import('@aws-sdk/lib-storage');
      let sourceError: unknown;
      body.once('error', (err) => {
        sourceError ??= err;
      });
      const upload = new Upload({
        client,
        params: {
          Bucket: this.bucket,
          Key: this.fullKey(key),
          Body: body,
          ContentType: options.contentType ?? 'application/octet-stream',
          ...(this.options.conditionalWrites === false ? {} : { IfNoneMatch: '*' }),
        },
        partSize: Math.max(this.options.partSize ?? 8 * 1024 * 1024, 5 * 1024 * 1024),
        queueSize: this.options.queueSize ?? 4,
        leavePartsOnError: false, // abort the multipart upload: no part becomes visible
      });
      upload.on('httpUploadProgress', (p) => {
        if (p.loaded !== undefined) options.onProgress?.(p.loaded);
      });
      try {
        await upload.done();
        return true;
      } catch (err) {
        // The source's own error wins over what the SDK made of it (e.g. a failed AbortMultipartUpload).
        if (sourceError instanceof MaapError) throw sourceError;
        if (sourceError) {
          const message = `upload of "${key}" to ${this.uri} failed: ${(sourceError as Error).message}`;
          throw new RegistryError(message, { cause: sourceError });
        }
        if (errorName(err) === 'PreconditionFailed' || status(err) === 412) return false;
        if (errorName(err) === 'ConditionalRequestConflict') {
          throw new RegistryError(`another upload of "${key}" to ${this.uri} is in progress; retry`, {
            cause: err,
          });
        }
        throw this.mapError(err, 'upload', key);
      }
    } finally {
      body.destroy();
    }
  }

  async put(key: string, body: Uint8Array | string, options: { contentType?: string } = {}): Promise<void> {
    const { s3, client } = await this.load();
    const Body = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const params = { Bucket: this.bucket, Key: this.fullKey(key), Body, ContentType: options.contentType };
    try {
      await client.send(new s3.PutObjectCommand(params));
    } catch (err) {
      throw this.mapError(err, 'write', key);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const { s3, client } = await this.load();
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await client.send(
          new s3.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
          }),
        );
        for (const obj of page.Contents ?? []) {
          if (!obj.Key?.startsWith(this.prefix)) continue;
          const key = obj.Key.slice(this.prefix.length);
          if (key === '' || isHiddenKey(key)) continue;
          out.push({ key, size: obj.Size ?? 0, mtime: obj.LastModified ?? new Date(0) });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.mapError(err, 'list', prefix || undefined);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const { s3, client } = await this.load();
    try {
      await client.send(new s3.DeleteObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
    } catch (err) {
      if (errorName(err) !== 'NoSuchKey') throw this.mapError(err, 'delete', key);
    }
  }

  async close(): Promise<void> {
    if (!this.sdk) return;
    const { client } = await this.sdk;
    client.destroy();
    this.sdk = undefined;
  }

  /** Turns an SDK error into a maap error that says what failed, where, and what to check. */
  private mapError(err: unknown, action: string, key?: string): MaapError {
    if (err instanceof MaapError) return err;
    const name = errorName(err);
    const where = key === undefined ? this.uri : `s3://${this.bucket}/${this.prefix}${key}`;
    const message = (err as Error | undefined)?.message ?? String(err);
    const cause = { cause: err };
    if (name === 'NoSuchBucket')
      return new RegistryError(`bucket "${this.bucket}" does not exist (${this.uri})`, cause);
    if (name === 'NoSuchKey' || name === 'NotFound') return new NotFoundError(`${where} not found`, cause);
    if (
      ['AccessDenied', 'Forbidden', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken'].includes(
        name,
      ) ||
      status(err) === 403
    ) {
      return new RegistryError(
        `access denied: cannot ${action} ${where} (${name}); check the AWS credentials and the bucket policy`,
        cause,
      );
    }
    if (name === 'CredentialsProviderError') {
      return new RegistryError(
        `no AWS credentials to ${action} ${where}: set AWS_PROFILE or AWS_ACCESS_KEY_ID (${message})`,
        cause,
      );
    }
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ECONNRESET' || name === 'TimeoutError') {
      const endpoint = this.options.endpoint ?? 'AWS S3';
      return new RegistryError(
        `cannot reach ${endpoint} to ${action} ${where}: ${message || code || name}`,
        cause,
      );
    }
    return new RegistryError(`cannot ${action} ${where}: ${name ? `${name}: ` : ''}${message}`, cause);
  }
}

function errorName(err: unknown): string {
  const e = err as { name?: string; Code?: string } | undefined;
  return e?.Code ?? e?.name ?? '';
}

function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}
