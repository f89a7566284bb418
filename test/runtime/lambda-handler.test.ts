import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openRegistry } from '../../lib/registry/open.ts';
import type { Store } from '../../lib/registry/store.ts';
import {
  createPredictor,
  type LambdaHandler,
  lambdaHandler,
  type Predictor,
} from '../../runtime/lambda/core.ts';
import { PinnedRegistry } from '../../runtime/lambda/load.ts';
import { initS3Config, prefetchPackage } from '../../runtime/lambda/prefetch.ts';
import { bundlePredictor, REQUIRE_HELPER } from '../../scripts/build.ts';
import { rewritePackage, tempDir } from '../helpers/packages.ts';
import { type S3rverHandle, start as startS3rver } from '../helpers/s3rver.ts';
import { EVENT_KINDS, type EventKind, type HttpCall, lambdaContext, lambdaEvent } from './lambda-events.ts';
import {
  EXPECTED,
  INFER_REQUEST,
  lambdaEnv,
  MODEL,
  PREFIX,
  packMlp,
  publishMlp,
  s3Registry,
  VERSION,
} from './mlp-registry.ts';

let s3: S3rverHandle;
let work: { dir: string; cleanup: () => Promise<void> };
let folderRegistry: string;

beforeAll(async () => {
  s3 = await startS3rver();
  work = await tempDir('maap-lambda-');
  await publishMlp(s3, work.dir);
  const registry = s3Registry(s3);
  await registry.setAlias(MODEL, 'production', VERSION);
  await registry.close();

  // A tampered package, written straight into the bucket (the registry's push would refuse it).
  const tampered = join(work.dir, 'tampered.maap');
  await rewritePackage(await packMlp(join(work.dir), '1.0.1'), tampered, (entries) =>
    entries.map((e) => {
      if (e.header.name !== 'model.onnx') return e;
      const data = Buffer.from(e.data);
      data[data.length - 1] = (data[data.length - 1] ?? 0) ^ 0xff;
      return { ...e, data };
    }),
  );
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: s3.credentials,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const { readFile } = await import('node:fs/promises');
  await client.send(
    new PutObjectCommand({
      Bucket: s3.bucket,
      Key: `${PREFIX}/${MODEL}/1.0.1.maap`,
      Body: await readFile(tampered),
    }),
  );
  client.destroy();

  folderRegistry = join(work.dir, 'registry');
  await mkdir(join(work.dir, 'folder'), { recursive: true });
  const folder = openRegistry(folderRegistry);
  await folder.push(await packMlp(join(work.dir, 'folder')));
  await folder.close();
});

afterAll(async () => {
  await s3?.stop();
  await work?.cleanup();
});

async function _readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A predictor as the entry point makes it: the package GET started first, then the load. */
async function predictorFor(env: NodeJS.ProcessEnv, options: { prefetch?: boolean } = {}) {
  const lines: string[] = [];
  const prefetch = options.prefetch === false ? undefined : prefetchPackage(env);
  const predictor = await createPredictor({
    env,
    sink: (line) => lines.push(line),
    ...(prefetch ? { prefetch } : {}),
  });
  return { predictor, handler: lambdaHandler(predictor), lines };
}

interface Answer {
  status: number;
  contentType: string | undefined;
  body: Record<string, unknown>;
}

/** Invokes the handler with `call` shaped as `kind`, and reads the result the way API Gateway would. */
async function invoke(handler: LambdaHandler, kind: EventKind, call: HttpCall): Promise<Answer> {
  const event = lambdaEvent(kind, { ...call, headers: { 'x-request-id': 'fixed-id', ...call.headers } });
  const result = (await handler(event as never, lambdaContext() as never)) as {
    statusCode: number;
    body: string;
    isBase64Encoded: boolean;
    headers?: Record<string, string>;
    multiValueHeaders?: Record<string, string[]>;
  };
  expect(result.isBase64Encoded).toBe(false);
  const contentType = result.headers?.['content-type'] ?? result.multiValueHeaders?.['content-type']?.[0];
  const requestId = result.headers?.['x-request-id'] ?? result.multiValueHeaders?.['x-request-id']?.[0];
  expect(requestId).toBe('fixed-id');
  return { status: result.statusCode, contentType, body: JSON.parse(result.body) };
}

const CALLS: Record<string, HttpCall> = {
  ready: { method: 'GET', path: '/v2/health/ready' },
  live: { method: 'GET', path: '/v2/health/live' },
  metadata: { method: 'GET', path: `/v2/models/${MODEL}` },
  infer: { method: 'POST', path: `/v2/models/${MODEL}/infer`, body: INFER_REQUEST },
  inferVersion: {
    method: 'POST',
    path: `/v2/models/${MODEL}/versions/${VERSION}/infer`,
    body: INFER_REQUEST,
  },
  unknownModel: { method: 'POST', path: '/v2/models/other/infer', body: INFER_REQUEST },
  badInput: {
    method: 'POST',
    path: `/v2/models/${MODEL}/infer`,
    body: { inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] },
  },
};

function expectMlpOutput(answer: Answer): void {
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ model_name: MODEL, model_version: VERSION, id: 'req-1' });
  const [output] = answer.body.outputs as {
    name: string;
    shape: number[];
    datatype: string;
    data: number[];
  }[];
  expect(output).toMatchObject({ name: 'y', shape: [2, 2], datatype: 'FP32' });
  expect(output?.data).toHaveLength(EXPECTED.length);
  for (const [i, v] of EXPECTED.entries()) expect(output?.data[i]).toBeCloseTo(v, 5);
}

describe('the Lambda predictor with a model in S3', () => {
  let ready: { predictor: Predictor; handler: LambdaHandler; lines: string[] };
  beforeAll(async () => {
    ready = await predictorFor(lambdaEnv(s3));
  });

  it('loads the model in init, from one S3 object, verified and smoke-tested', () => {
    expect(ready.predictor.init.ready).toBe(true);
    const loaded = ready.lines.map((l) => JSON.parse(l)).find((l) => l.message === 'model loaded');
    expect(loaded).toMatchObject({
      level: 'INFO',
      model: MODEL,
      model_version: VERSION,
      origin: `${MODEL}@${VERSION} from s3://${s3.bucket}/${PREFIX}`,
      smoke_test: 'passed',
    });
  });

  it('answers Function URL, HTTP API v2 and REST v1 events through the same app, identically', async () => {
    const byKind: Record<string, Record<string, Answer>> = {};
    for (const kind of EVENT_KINDS) {
      byKind[kind] = {};
      for (const [name, call] of Object.entries(CALLS))
        byKind[kind][name] = await invoke(ready.handler, kind, call);
    }
    const reference = byKind['function-url'] ?? {};
    expectMlpOutput(reference.infer as Answer);
    expectMlpOutput(reference.inferVersion as Answer);
    expect(reference.ready).toEqual({ status: 200, contentType: 'application/json', body: { ready: true } });
    expect(reference.live?.status).toBe(200);
    expect(reference.metadata?.body).toMatchObject({
      name: MODEL,
      versions: [VERSION],
      platform: expect.any(String),
    });
    expect(reference.unknownModel?.status).toBe(404);
    expect(reference.badInput?.status).toBe(400);
    expect(byKind['http-api-v2']).toEqual(reference);
    expect(byKind['rest-api-v1']).toEqual(reference);
  });

  it('logs each request with the invocation context and flushes its metrics before returning', async () => {
    ready.lines.length = 0;
    await invoke(ready.handler, 'http-api-v2', CALLS.infer as HttpCall);
    const parsed = ready.lines.map((l) => JSON.parse(l));
    const request = parsed.find((l) => l.message === 'request');
    expect(request).toMatchObject({
      status: 200,
      operation: 'infer',
      request_id: 'fixed-id',
      function_request_id: lambdaContext().awsRequestId,
      model: MODEL,
      batch_size: 2,
    });
    const emf = parsed.find((l) => l._aws);
    expect(emf).toMatchObject({ Requests: 1, model: MODEL, version: VERSION, BatchSize: 2 });
  });

  it('routes past MAAP_BASE_PATH, a base path in front of the routes (a Function URL behind CloudFront)', async () => {
    const { handler } = await predictorFor({ ...lambdaEnv(s3), MAAP_BASE_PATH: '/ml/' });
    const call = CALLS.infer as HttpCall;
    expect((await invoke(handler, 'function-url', { ...call, path: `/ml${call.path}` })).status).toBe(200);
    expect((await invoke(handler, 'function-url', call)).status).toBe(200);
    expect((await invoke(handler, 'function-url', { ...call, path: `/other${call.path}` })).status).toBe(404);
  });

  it('loads the same without the early GET (prefetch)', async () => {
    const { predictor, handler } = await predictorFor(lambdaEnv(s3), { prefetch: false });
    expect(predictor.init.ready).toBe(true);
    expectMlpOutput(await invoke(handler, 'rest-api-v1', CALLS.infer as HttpCall));
    await predictor.slot.close();
  });

  it('reads an alias with one more GET, and a folder registry from its file', async () => {
    for (const env of [
      lambdaEnv(s3, 'production'),
      { MAAP_REGISTRY: folderRegistry, MAAP_MODEL: MODEL, MAAP_MODEL_VERSION: VERSION },
      { MAAP_REGISTRY: `file://${folderRegistry}`, MAAP_MODEL: `${MODEL}@${VERSION}` },
    ]) {
      const { predictor, handler } = await predictorFor(env);
      expect(predictor.init.ready, JSON.stringify(predictor.init.ready ? '' : predictor.init.reason)).toBe(
        true,
      );
      expectMlpOutput(await invoke(handler, 'function-url', CALLS.infer as HttpCall));
      await predictor.slot.close();
    }
  });

  afterAll(async () => {
    await ready?.predictor.slot.close();
  });
});

describe('the Lambda predictor without a usable model', () => {
  const cases: { what: string; env: () => NodeJS.ProcessEnv; reason: RegExp; level: string }[] = [
    {
      what: 'MAAP_MODEL is not set',
      env: () => ({ ...lambdaEnv(s3), MAAP_MODEL: '' }),
      reason: /^no model configured: set MAAP_MODEL/,
      level: 'WARN',
    },
    {
      what: 'the package is not in the bucket',
      env: () => lambdaEnv(s3, '9.9.9'),
      reason:
        /mlp@9\.9\.9 from s3:\/\/maap-test\/models: s3:\/\/maap-test\/models\/mlp\/9\.9\.9\.maap not found \(S3 answered 404 NoSuchKey/,
      level: 'ERROR',
    },
    {
      what: 'the package was tampered with',
      env: () => lambdaEnv(s3, '1.0.1'),
      reason: /mlp@1\.0\.1 from s3:\/\/maap-test\/models: .*(sha-?256|hash)/i,
      level: 'ERROR',
    },
    {
      what: 'the credentials are refused',
      env: () => ({ ...lambdaEnv(s3), AWS_ACCESS_KEY_ID: 'NOBODY' }),
      reason:
        /access denied reading s3:\/\/maap-test\/models\/mlp\/1\.0\.0\.maap: the credentials .* \(S3 answered 403 InvalidAccessKeyId/,
      level: 'ERROR',
    },
    {
      what: 'the version is a range (a listing, which one GET cannot do)',
      env: () => lambdaEnv(s3, '^1'),
      reason: /cannot list it: set MAAP_MODEL_VERSION to an exact version or an alias/,
      level: 'ERROR',
    },
    {
      what: 'there are no credentials at all',
      env: () => ({ ...lambdaEnv(s3), AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }),
      reason: /no AWS credentials in the environment/,
      level: 'ERROR',
    },
  ];

  for (const c of cases) {
    it(`starts anyway when ${c.what}: readiness 503 with the reason, and the log says why`, async () => {
      const { predictor, handler, lines } = await predictorFor(c.env());
      expect(predictor.init.ready).toBe(false);
      const reason = predictor.init.ready ? '' : predictor.init.reason;
      expect(reason).toMatch(c.reason);
      for (const kind of EVENT_KINDS) {
        const answer = await invoke(handler, kind, CALLS.ready as HttpCall);
        expect(answer).toEqual({ status: 503, contentType: 'application/json', body: { error: reason } });
        expect((await invoke(handler, kind, CALLS.live as HttpCall)).status).toBe(200);
        const infer = await invoke(handler, kind, CALLS.infer as HttpCall);
        expect(infer.status).toBe(503);
        expect(infer.body.error).toContain(reason);
      }
      const logged = lines.map((l) => JSON.parse(l));
      expect(logged.find((l) => l.message === 'no model loaded')).toMatchObject({ level: c.level, reason });
      // The 503s are logged at ERROR with the reason, and no made-up exception.
      const refused = logged.filter((l) => l.message === 'request' && l.status === 503);
      expect(refused.length).toBeGreaterThan(0);
      for (const l of refused) {
        expect(l).toMatchObject({ level: 'ERROR', error_message: expect.stringContaining(reason) });
        expect(l.error).toBeUndefined();
      }
    });
  }
});

describe('the predictor bundle', () => {
  it('keeps the AWS SDK out of the predictor bundle: no @aws-sdk input, no static import of it', async () => {
    const metafile = await bundlePredictor(join(work.dir, 'bundle'), false);
    expect(
      Object.keys(metafile.inputs).filter((p) => p.includes('@aws-sdk') || p.includes('@smithy')),
    ).toEqual([]);
    const imports = Object.values(metafile.outputs).flatMap((o) => o.imports);
    const sdk = imports.filter((i) => i.path.startsWith('@aws-sdk/'));
    // Only the full registry's lazy `import()`s remain (never taken on the predictor's start path).
    expect(sdk.every((i) => i.kind === 'dynamic-import' && i.external)).toBe(true);
    // node:http(s) through process.getBuiltinModule, never an import: importing a built-in builds its ESM namespace,
    // which reads every export, and on Node 22 (Lambda's nodejs22.x) node:http's lazy WebSocket exports load undici
    // (75 more modules: 75M more instructions, ~16% of a cold start's main thread there).
    expect(imports.filter((i) => /^(node:)?https?$/.test(i.path))).toEqual([]);
    // Every other built-in too: an import gets an ES module reading only the exports used (a CommonJS stand-in would
    // go through esbuild's __toESM, which reads every export's descriptor: on Node 22 that runs node:util's lazy
    // setTraceSigInt, which loads worker_threads); a require gets the module itself.
    const uses = Object.values(metafile.inputs).flatMap((input) =>
      input.imports.filter((i) => i.path.startsWith('maap-builtin:')),
    );
    expect(uses.length).toBeGreaterThan(10);
    for (const use of uses) {
      const format = metafile.inputs[use.path]?.format;
      expect([use.path, use.kind, format]).toEqual([
        use.path,
        use.kind,
        use.kind === 'import-statement' ? 'esm' : 'cjs',
      ]);
    }
    // onnxruntime-node's JavaScript is bundled (one copy, CommonJS, as onnxruntime-node itself requires it); only
    // its native binding comes from the layer, through a require at run time (which honours NODE_PATH).
    expect(imports.filter((i) => i.path.includes('onnxruntime'))).toEqual([]);
    // (Files only: the build's own modules, `<namespace>:...`, stand in for built-ins and worker_threads.)
    const ort = Object.keys(metafile.inputs).filter((p) => p.includes('onnxruntime') && !/^[\w-]+:/.test(p));
    expect(ort).toContain('node_modules/onnxruntime-node/dist/binding.js');
    expect(
      ort.filter((p) => !/^node_modules\/onnxruntime-(node\/dist|common\/dist\/cjs)\/[\w-]+\.js$/.test(p)),
    ).toEqual([]);
    // What runs before the package GET starts: the entry and its static imports, none of the heavy modules.
    const [entry] = Object.entries(metafile.outputs).filter(([, o]) =>
      o.entryPoint?.endsWith('predictor.ts'),
    );
    const first = new Set<string>();
    const visit = (path: string) => {
      if (first.has(path)) return;
      first.add(path);
      for (const i of metafile.outputs[path]?.imports ?? [])
        if (i.kind === 'import-statement' && !i.external) visit(i.path);
    };
    visit(entry?.[0] ?? '');
    const inputs = [...first].flatMap((o) => Object.keys(metafile.outputs[o]?.inputs ?? {}));
    expect(inputs).toContain('lib/registry/s3-get.ts');
    expect(
      inputs.filter((i) => /zod|hono|onnxruntime|powertools|tar-stream|lib\/package|lib\/inference/.test(i)),
    ).toEqual([]);
    expect(imports.some((i) => i.kind === 'dynamic-import' && !i.external)).toBe(true);
  });

  it('loads a pinned version without the registry code, zod or semver (lazy chunks for aliases, ranges, folders, odd manifests and requests)', async () => {
    const metafile = await bundlePredictor(join(work.dir, 'bundle-start'), false);
    const outputs = metafile.outputs;
    const [entry] = Object.entries(outputs).filter(([, o]) => o.entryPoint?.endsWith('predictor.ts'));
    // Everything evaluated before the first invocation: the entry, the chunk it imports, and their static imports.
    const loaded = new Set<string>();
    const visit = (path: string, dynamicToo: boolean) => {
      if (loaded.has(path)) return;
      loaded.add(path);
      for (const i of outputs[path]?.imports ?? []) {
        if (i.external) continue;
        if (i.kind === 'import-statement' || (dynamicToo && i.kind === 'dynamic-import'))
          visit(i.path, false);
      }
    };
    visit(entry?.[0] ?? '', true);
    const inputs = [...loaded].flatMap((o) => Object.keys(outputs[o]?.inputs ?? {}));
    expect(inputs).toContain('lib/package/verify.ts');
    expect(inputs).toEqual(
      expect.arrayContaining(['lib/package/manifest-fast.ts', 'lib/inference/request-check.ts']),
    );
    const lazy =
      /lib\/registry\/(registry|aliases|open|file-store|transfer|ref)\.ts|lib\/package\/manifest\.ts|lib\/inference\/validate\.ts|node_modules\/(zod|semver)\//;
    expect(inputs.filter((i) => lazy.test(i))).toEqual([]);
    // ...and they are still in the bundle, for aliases, ranges, folder registries, and the manifests and requests
    // the fast paths leave to zod.
    const all = Object.values(outputs).flatMap((o) => Object.keys(o.inputs));
    expect(all).toEqual(
      expect.arrayContaining([
        'lib/registry/registry.ts',
        'lib/registry/aliases.ts',
        'lib/package/manifest.ts',
        'lib/inference/validate.ts',
      ]),
    );
    expect(all.some((i) => i.includes('node_modules/zod/'))).toBe(true);
    expect(all.some((i) => i.includes('node_modules/semver/'))).toBe(true);
  });
  it("finds esbuild's require helper minified or not (MAAP_BUILD_NO_MINIFY, for profiling, still builds)", async () => {
    expect(REQUIRE_HELPER.test('var a=(b=>typeof require<"u"?require:b)')).toBe(true);
    expect(REQUIRE_HELPER.test('typeof require !== "undefined" ? require : x')).toBe(true);
    expect(REQUIRE_HELPER.test('throw Error("Environment variable is required")')).toBe(false);
    const previous = process.env.MAAP_BUILD_NO_MINIFY;
    process.env.MAAP_BUILD_NO_MINIFY = '1';
    try {
      const metafile = await bundlePredictor(join(work.dir, 'bundle-unminified'), false);
      expect(Object.keys(metafile.outputs).length).toBeGreaterThan(1);
    } finally {
      if (previous === undefined) delete process.env.MAAP_BUILD_NO_MINIFY;
      else process.env.MAAP_BUILD_NO_MINIFY = previous;
    }
  });
});

describe("the init's S3 reads", () => {
  it("wait for S3's answer within Lambda's 10 s init, and leave the transfer s3Get's own bound", () => {
    const env = { AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'eu-west-1' };
    const config = initS3Config(env);
    expect(config).toMatchObject({ region: 'eu-west-1', answerWithinMs: 6_000 });
    expect(config.credentials).toEqual({ accessKeyId: 'AKID', secretAccessKey: 'secret' });
    // What s3Get's own tests show answerWithinMs does (a bound over all tries) must fit in 10 s with the rest.
    expect((config.answerWithinMs ?? Number.POSITIVE_INFINITY) + 1_000).toBeLessThan(10_000);
    // The early GET's body waits unread while the modules load: no short stall bound may cut it off meanwhile.
    expect(config.timeoutMs).toBeUndefined();
  });

  it('keep an early GET whose body breaks before it is taken from ending the process, and hand over the error', async () => {
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000));
      setTimeout(() => res.destroy(), 20); // the connection breaks mid-body
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const { port } = server.address() as AddressInfo;
      const prefetch = prefetchPackage({
        AWS_ACCESS_KEY_ID: 'AKID',
        AWS_SECRET_ACCESS_KEY: 'secret',
        AWS_REGION: 'eu-west-1',
        MAAP_S3_ENDPOINT: `http://127.0.0.1:${port}`,
        MAAP_REGISTRY: 's3://maap-test/models',
        MAAP_MODEL: 'mlp',
        MAAP_MODEL_VERSION: '1.0.0',
      });
      expect(prefetch).toBeDefined();
      await new Promise((wait) => setTimeout(wait, 200)); // broken by now, and nothing has taken it
      const taken = prefetch?.take('s3://maap-test/models', 'mlp/1.0.0.maap');
      await expect(taken).rejects.toThrow(
        /reading s3:\/\/maap-test\/models\/mlp\/1\.0\.0\.maap failed after 1000 bytes/,
      );
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});

describe("the early GET's departure (Prefetch.sent, awaited before the heavy import)", () => {
  const envFor = (endpoint: string): NodeJS.ProcessEnv => ({
    AWS_ACCESS_KEY_ID: 'AKID',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_REGION: 'eu-west-1',
    MAAP_S3_ENDPOINT: endpoint,
    MAAP_REGISTRY: 's3://maap-test/models',
    MAAP_MODEL: 'mlp',
    MAAP_MODEL_VERSION: '1.0.0',
  });
  const NEVER = 3_600_000; // a wait that would outlast the test: what resolves `sent` is the network
  const TLS_CERT = join(import.meta.dirname, '../fixtures/tls/localhost.crt');
  const TLS_KEY = join(import.meta.dirname, '../fixtures/tls/localhost.key');

  /**
   * A server in another process that prints when each request arrived (its Date.now()): it takes the request while
   * this process is blocked, as the heavy import blocks the entry point.
   */
  async function serverProcess(tls: boolean) {
    const script = `
      const { readFileSync } = require('node:fs');
      const tls = ${tls};
      const { createServer } = require(tls ? 'node:https' : 'node:http');
      const options = tls ? { key: readFileSync(${JSON.stringify(TLS_KEY)}), cert: readFileSync(${JSON.stringify(TLS_CERT)}) } : {};
      const server = createServer(options, (req, res) => {
        process.stdout.write('got ' + Date.now() + '\\n');
        req.resume();
        res.writeHead(404).end();
      });
      server.listen(0, '127.0.0.1', () => process.stdout.write('port ' + server.address().port + '\\n'));
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    const waiters: (() => void)[] = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      lines.push(...chunk.split('\n').filter(Boolean));
      for (const wake of waiters.splice(0)) wake();
    });
    const line = async (prefix: string): Promise<string> => {
      for (;;) {
        const found = lines.find((l) => l.startsWith(prefix));
        if (found) return found.slice(prefix.length);
        await new Promise<void>((wake) => waiters.push(wake));
      }
    };
    return { port: Number(await line('port ')), arrived: async () => Number(await line('got ')), child };
  }

  for (const scheme of ['http', 'https'] as const) {
    it(`resolves once the request has gone out over ${scheme}, before the heavy import would start`, async () => {
      if (scheme === 'https') vi.stubEnv('NODE_TLS_REJECT_UNAUTHORIZED', '0'); // the fixture's self-signed certificate
      const server = await serverProcess(scheme === 'https');
      try {
        const prefetch = prefetchPackage(envFor(`${scheme}://127.0.0.1:${server.port}`), NEVER);
        await prefetch?.sent; // its own wait is an hour: the request's departure resolved it
        const blocked = Date.now();
        while (Date.now() - blocked < 500); // the import, which does not let the event loop turn
        const importStarts = Date.now();
        expect(await server.arrived()).toBeLessThan(importStarts); // sent before, not after
        await expect(prefetch?.take('s3://maap-test/models', 'mlp/1.0.0.maap')).rejects.toThrow(/not found/);
      } finally {
        server.child.kill();
        vi.unstubAllEnvs();
      }
    });
  }

  it('resolves at the first refused connection, while the GET tries again (and gets the object once S3 listens)', async () => {
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': '3' }).end('abc');
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const { port } = server.address() as AddressInfo;
    await new Promise((ok) => server.close(ok)); // nothing listens there for the first try
    const prefetch = prefetchPackage(envFor(`http://127.0.0.1:${port}`), NEVER);
    await prefetch?.sent; // the refusal resolved it; the next try waits 100 ms
    await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
    try {
      const body = (await prefetch?.take('s3://maap-test/models', 'mlp/1.0.0.maap')) as Readable;
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('abc');
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });

  it('stops waiting after its bound when the TLS handshake does not end (the GET goes on)', async () => {
    const sockets: Socket[] = [];
    const silent = createNetServer((socket) => sockets.push(socket)); // accepts, never speaks TLS
    await new Promise<void>((ok) => silent.listen(0, '127.0.0.1', ok));
    const { port } = silent.address() as AddressInfo;
    const prefetch = prefetchPackage(envFor(`https://127.0.0.1:${port}`), 300);
    await prefetch?.sent;
    expect(sockets).toHaveLength(1); // connected, its handshake pending
    // The GET goes on: cut its connection and close the port, and it ends refused.
    const taken = prefetch?.take('s3://maap-test/models', 'mlp/1.0.0.maap');
    for (const socket of sockets) socket.destroy();
    await new Promise((ok) => silent.close(ok));
    await expect(taken).rejects.toThrow(/cannot reach/);
  });
});

describe('PinnedRegistry', () => {
  // resolve() of an exact version touches no store: a store that refuses every call proves it.
  const untouchable = new Proxy({ uri: 's3://bucket/models' } as Store, {
    get: (target, key) => {
      if (key === 'uri' || key === 'then') return Reflect.get(target, key);
      throw new Error(`the store was used: ${String(key)}`);
    },
  });
  const registry = new PinnedRegistry(untouchable);

  it('resolves a canonical exact version to its key without semver', async () => {
    await expect(registry.resolve('fraud', '1.4.0')).resolves.toEqual({
      name: 'fraud',
      version: '1.4.0',
      key: 'fraud/1.4.0.maap',
      via: 'range',
    });
    await expect(registry.resolve('fraud', '2.0.0-rc.1')).resolves.toMatchObject({
      key: 'fraud/2.0.0-rc.1.maap',
    });
  });

  it('resolves the other spellings of an exact version as semver reads them', async () => {
    for (const spec of ['v1.4.0', '1.4.0+build.7']) {
      await expect(registry.resolve('fraud', spec)).resolves.toMatchObject({
        version: '1.4.0',
        key: 'fraud/1.4.0.maap',
      });
    }
  });

  it('refuses a bad model name before anything else', async () => {
    await expect(registry.resolve('Fraud', '1.4.0')).rejects.toThrow(/invalid model name "Fraud"/);
  });
});
