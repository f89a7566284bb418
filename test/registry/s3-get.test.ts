/**
 * The light S3 reader of the Lambda predictor's start path: SigV4 as the AWS SDK computes it (s3rver does not check
 * signatures, so this is where signing is proven), retries, error messages, broken transfers. Against a fake
 * endpoint on 127.0.0.1; the real S3 API (s3rver) path is covered by test/runtime/lambda-handler.test.ts.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { MaapError, RegistryError } from '../../lib/errors.ts';
import { type S3GetConfig, s3Get, s3Head, s3Url, signRequest } from '../../lib/registry/s3-get.ts';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('s3Get', () => {
  /** node:crypto as the SDK signer's hash. */
  class Sha256 {
    private hash: Hash | Hmac;
    constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
      this.hash = this.fresh();
    }
    private fresh() {
      const { secret } = this;
      if (secret === undefined) return createHash('sha256');
      const key =
        typeof secret === 'string'
          ? secret
          : secret instanceof ArrayBuffer
            ? new Uint8Array(secret)
            : new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength);
      return createHmac('sha256', key);
    }
    update(chunk: Uint8Array): void {
      this.hash.update(chunk);
    }
    async digest(): Promise<Uint8Array> {
      return new Uint8Array(this.hash.digest());
    }
    reset(): void {
      this.hash = this.fresh();
    }
  }

  it('signs exactly as the AWS SDK signs the same GET or HEAD (s3rver does not check signatures)', async () => {
    const now = new Date('2026-03-12T19:03:58Z');
    const withToken = {
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
      sessionToken: 'token/+=',
    };
    const noToken = {
      accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
      secretAccessKey: 'je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY',
    };
    const cases: [string, S3GetConfig, string][] = [
      ['GET', { region: 'eu-west-1', credentials: withToken }, 'models/fraud/1.4.0+build.7.maap'],
      [
        'GET',
        { region: 'us-east-1', credentials: withToken, endpoint: 'http://127.0.0.1:4568' },
        "odd keys/a b(1)!*'.maap",
      ],
      ['HEAD', { region: 'cn-north-1', credentials: noToken }, 'models/ünïcödé/~tilde/1.0.0.maap'],
      [
        'GET',
        { region: 'ap-southeast-2', credentials: noToken, endpoint: 'https://minio.internal:9000/base/' },
        'm/v.maap',
      ],
    ];
    for (const [method, config, key] of cases) {
      const url = s3Url('maap-bucket', key, config);
      const ours = signRequest(method, url, config, now);
      const { credentials } = config;
      const sdk = await new SignatureV4({
        service: 's3',
        region: config.region,
        credentials,
        sha256: Sha256,
        uriEscapePath: false,
      }).sign(
        {
          method,
          protocol: url.protocol,
          hostname: url.hostname,
          ...(url.port ? { port: Number(url.port) } : {}),
          path: url.pathname,
          query: {},
          headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
        },
        { signingDate: now },
      );
      expect(ours.headers.Authorization, `${method} ${url.href}`).toBe(sdk.headers.authorization);
      expect(ours.path).toBe(url.pathname);
      // Every header the SDK signs goes out with the value it signed.
      for (const name of ['host', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token']) {
        const sent = Object.entries(ours.headers).find(([n]) => n.toLowerCase() === name)?.[1];
        expect(sent, name).toBe(sdk.headers[name]);
      }
    }
  });

  it("addresses AWS S3 in the region's own domain, path-style for buckets with dots, and a custom endpoint path-style", () => {
    const at = (bucket: string, region: string, endpoint?: string) =>
      s3Url(bucket, 'models/a b.maap', { region, ...(endpoint ? { endpoint } : {}) }).href;
    expect(at('maap', 'eu-west-1')).toBe('https://maap.s3.eu-west-1.amazonaws.com/models/a%20b.maap');
    expect(at('maap', 'cn-north-1')).toBe('https://maap.s3.cn-north-1.amazonaws.com.cn/models/a%20b.maap');
    expect(at('maap', 'us-gov-west-1')).toBe('https://maap.s3.us-gov-west-1.amazonaws.com/models/a%20b.maap');
    expect(at('my.models', 'eu-west-1')).toBe(
      'https://s3.eu-west-1.amazonaws.com/my.models/models/a%20b.maap',
    );
    expect(at('maap', 'eu-west-1', 'http://127.0.0.1:4568/')).toBe(
      'http://127.0.0.1:4568/maap/models/a%20b.maap',
    );
  });

  /** A fake S3 endpoint answering each request with the next of `answers`. */
  async function fakeS3(answers: ((res: ServerResponse) => void)[]) {
    let calls = 0;
    const server = createServer((req, res) => {
      req.resume();
      const answer = answers[Math.min(calls++, answers.length - 1)];
      answer?.(res);
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const { port } = server.address() as AddressInfo;
    const config: S3GetConfig = {
      region: 'eu-west-1',
      endpoint: `http://127.0.0.1:${port}`,
      credentials: { accessKeyId: 'AKID', secretAccessKey: 'secret' },
    };
    return { config, calls: () => calls, close: () => new Promise<void>((ok) => server.close(() => ok())) };
  }
  const s3Error =
    (status: number, code: string, headers: Record<string, string> = {}) =>
    (res: ServerResponse) => {
      res.writeHead(status, { 'content-type': 'application/xml', ...headers });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>says S3</Message></Error>`,
      );
    };

  it('retries 5xx answers, then streams the body', async () => {
    const fake = await fakeS3([
      s3Error(503, 'SlowDown'),
      s3Error(500, 'InternalError'),
      (res) => {
        res.writeHead(200, { 'content-length': '5', etag: '"abc"' });
        res.end('hello');
      },
    ]);
    try {
      const object = await s3Get('b', 'k', fake.config);
      expect(object.size).toBe(5);
      expect(object.etag).toBe('"abc"');
      expect((await readAll(object.body)).toString()).toBe('hello');
      expect(fake.calls()).toBe(3);
    } finally {
      await fake.close();
    }
  });

  it('reads through import() on a Node without process.getBuiltinModule (before 20.16)', async () => {
    const fake = await fakeS3([
      (res) => {
        res.writeHead(200, { 'content-length': '2' });
        res.end('ok');
      },
      (res) => {
        res.writeHead(404);
        res.end();
      },
    ]);
    const own = Object.getOwnPropertyDescriptor(process, 'getBuiltinModule');
    const replace = (value: unknown) =>
      Object.defineProperty(process, 'getBuiltinModule', { value, configurable: true, writable: true });
    let asked = 0;
    replace(() => {
      asked++;
      return undefined;
    });
    try {
      const object = await s3Get('b', 'k', fake.config);
      expect((await readAll(object.body)).toString()).toBe('ok');
      expect(asked).toBe(1);
      replace(undefined);
      expect(await s3Head('b', 'k', fake.config)).toBeUndefined();
    } finally {
      if (own) Object.defineProperty(process, 'getBuiltinModule', own);
      await fake.close();
    }
  });

  it('gives up on an S3 that never answers once answerWithinMs has passed, not after every try times timeoutMs', async () => {
    const fake = await fakeS3([() => {}]); // takes the request, never answers
    try {
      const config = { ...fake.config, answerWithinMs: 300, timeoutMs: 60_000, attempts: 3 };
      const failure = await s3Get('b', 'k', config).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(RegistryError);
      expect((failure as Error).message).toBe(
        `cannot reach ${fake.config.endpoint} to read s3://b/k: no answer within 300 ms (1 tries)`,
      );
      expect(fake.calls()).toBe(1);
    } finally {
      await fake.close();
    }
  });

  it("stops retrying 5xx answers when the next pause would end past answerWithinMs, with S3's own error", async () => {
    const fake = await fakeS3([s3Error(503, 'SlowDown')]);
    try {
      // Pauses of 100, 200, 400 ms...: the second would end past 250 ms.
      const config = { ...fake.config, answerWithinMs: 250, attempts: 10 };
      const failure = await s3Get('b', 'k', config).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(RegistryError);
      expect((failure as Error).message).toMatch(/S3 answered 503 SlowDown: says S3/);
      expect(fake.calls()).toBeGreaterThanOrEqual(1);
      expect(fake.calls()).toBeLessThanOrEqual(2);
    } finally {
      await fake.close();
    }
  });

  it('turns S3 refusals into maap errors that say what to do', async () => {
    const cases: [(res: ServerResponse) => void, RegExp, string][] = [
      [
        s3Error(404, 'NoSuchKey'),
        /^s3:\/\/b\/k not found \(S3 answered 404 NoSuchKey: says S3\)$/,
        'NotFoundError',
      ],
      [
        s3Error(403, 'AccessDenied'),
        /^access denied reading s3:\/\/b\/k: the function's role needs s3:GetObject on s3:\/\/b\/k/,
        'RegistryError',
      ],
      [
        s3Error(301, 'PermanentRedirect', { 'x-amz-bucket-region': 'us-west-2' }),
        /^cannot read s3:\/\/b\/k from eu-west-1: it is in us-west-2; set AWS_REGION/,
        'RegistryError',
      ],
      [
        s3Error(503, 'SlowDown'),
        /^cannot read s3:\/\/b\/k: S3 answered 503 SlowDown: says S3$/,
        'RegistryError',
      ],
    ];
    for (const [answer, message, name] of cases) {
      const fake = await fakeS3([answer]);
      try {
        const error = await s3Get('b', 'k', { ...fake.config, attempts: 1 }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MaapError);
        expect((error as Error).name).toBe(name);
        expect((error as Error).message).toMatch(message);
      } finally {
        await fake.close();
      }
    }
  });

  it('fails the body stream, with the byte count, when the connection breaks midway', async () => {
    const fake = await fakeS3([
      (res) => {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('x'.repeat(100));
        setTimeout(() => res.destroy(), 20);
      },
    ]);
    try {
      const object = await s3Get('b', 'k', fake.config);
      const error = await readAll(object.body).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RegistryError);
      expect((error as Error).message).toMatch(/^reading s3:\/\/b\/k failed after 100 bytes: /);
    } finally {
      await fake.close();
    }
  });
  it('answers HEAD with the size, or undefined when the object is absent', async () => {
    const fake = await fakeS3([
      (res) => {
        res.writeHead(200, { 'content-length': '1234', 'last-modified': 'Thu, 12 Mar 2026 19:03:58 GMT' });
        res.end();
      },
      (res) => {
        res.writeHead(404);
        res.end();
      },
    ]);
    try {
      expect(await s3Head('b', 'k', fake.config)).toEqual({
        size: 1234,
        mtime: new Date('2026-03-12T19:03:58Z'),
      });
      expect(await s3Head('b', 'k', fake.config)).toBeUndefined();
    } finally {
      await fake.close();
    }
  });
});
