/**
 * The built Lambda artifact is self-contained: `npm run build`'s predictor bundle and onnxruntime layer, alone in
 * an empty folder laid out as Lambda lays them out (`/var/task` + `/opt/nodejs/node_modules`), serve a correct
 * inference through the handler in a fresh `node` process, with the model in a real S3 API.
 */
import { spawn } from 'node:child_process';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, join, relative, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Arch,
  type BuildResult,
  build,
  checkLimits,
  keepForLayer,
  LAMBDA_LIMITS,
  MB,
} from '../../scripts/build.ts';
import { tempDir } from '../helpers/packages.ts';
import { type S3rverHandle, start as startS3rver } from '../helpers/s3rver.ts';
import { EVENT_KINDS, type HttpCall, lambdaEvent } from './lambda-events.ts';
import { EXPECTED, INFER_REQUEST, lambdaEnv, MODEL, publishMlp, VERSION } from './mlp-registry.ts';

const ARCH = process.arch as Arch;
/** The onnxruntime-node the build bundles: the one installed here. */
const BUNDLED_ORT = (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string })
  .version;

let work: { dir: string; cleanup: () => Promise<void> };
let s3: S3rverHandle;
let built: BuildResult;
/** The fake Lambda filesystem root: `<root>/var/task`, `<root>/opt`. */
let root: string;

beforeAll(async () => {
  work = await tempDir('maap-artifact-');
  // The real build, into a private dist/ (tests running in parallel never share a build folder).
  [built, s3] = await Promise.all([build({ outDir: join(work.dir, 'dist'), print: false }), startS3rver()]);
  await publishMlp(s3, work.dir);

  root = join(work.dir, 'lambda');
  await cp(built.predictor.dir, join(root, 'var/task'), { recursive: true });
  await cp(built.layers[ARCH].dir, join(root, 'opt'), { recursive: true });
  await writeFile(join(root, 'driver.mjs'), DRIVER);
}, 120_000);

afterAll(async () => {
  await s3?.stop();
  await work?.cleanup();
});

/** Imports the handler as Lambda's runtime does, invokes it with each event, reports results and loaded modules. */
const DRIVER = `
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const [taskRoot, eventsFile, outFile] = process.argv.slice(2);
const before = new Set(process.moduleLoadList);
const { handler } = await import(pathToFileURL(taskRoot + '/index.mjs').href);
const context = {
  callbackWaitsForEmptyEventLoop: true, functionName: 'maap-predictor', functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:maap-predictor', memoryLimitInMB: '1024',
  awsRequestId: '8f507cfc-2ac5-4d4e-9a3b-0d1c2e3f4a5b', logGroupName: '/aws/lambda/maap-predictor',
  logStreamName: '2026/03/12/[$LATEST]0123456789abcdef', getRemainingTimeInMillis: () => 30000,
};
const results = [];
for (const call of JSON.parse(readFileSync(eventsFile, 'utf8'))) {
  results.push({ ...call, event: undefined, result: await handler(call.event, context) });
}
const modules = Object.keys(createRequire(import.meta.url).cache);
// What the handler loaded: not Node's own start, nor this driver's imports.
const builtins = process.moduleLoadList.filter((m) => !before.has(m) && m.startsWith('NativeModule ')).map((m) => m.slice(13));
writeFileSync(outFile, JSON.stringify({ results, modules, builtins }));
`;

/**
 * Inputs of the chunks the predictor loads only on demand: zod, semver and the schemas built on them, and
 * powertools (the plain lines print its format while the environment leaves it plain).
 */
const ON_DEMAND =
  /node_modules\/(zod|semver|@aws-lambda-powertools\/[\w-]+|@aws\/lambda-invoke-store)\/|lib\/package\/manifest\.ts$|lib\/inference\/validate\.ts$|lib\/telemetry\/request-(log|metrics)\.ts$/;

/** Runs `node <args>` in `<root>/var/task` with only the environment Lambda would give it. */
function runNode(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: join(root, 'var/task'),
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Only imports the handler (its init), in a fresh `node` with `env`. */
function importHandler(env: Record<string, string>) {
  return runNode(
    ['--input-type=module', '-e', `await import(${JSON.stringify(join(root, 'var/task/index.mjs'))})`],
    env,
  );
}

/** What Lambda's Node.js runtime sets (NODE_PATH exactly as on nodejs22.x, rooted in the fake filesystem). */
function lambdaProcessEnv(extra: Record<string, string>, nodePath = true): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    TZ: ':UTC',
    LAMBDA_TASK_ROOT: join(root, 'var/task'),
    LAMBDA_RUNTIME_DIR: join(root, 'var/runtime'),
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
    AWS_LAMBDA_FUNCTION_NAME: 'maap-predictor',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '1024',
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    ...(nodePath
      ? {
          NODE_PATH: [
            'opt/nodejs/node22/node_modules',
            'opt/nodejs/node_modules',
            'var/runtime/node_modules',
            'var/runtime',
            'var/task',
          ]
            .map((p) => join(root, p))
            .join(':'),
        }
      : {}),
    ...extra,
  };
}

describe('the built Lambda artifact', () => {
  it(`holds only what runs on linux-${ARCH}, within Lambda limits`, async () => {
    const files = async (dir: string) =>
      (await readdir(dir, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile())
        .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'));
    const handlerFiles = await files(built.predictor.dir);
    expect(handlerFiles).toContain('index.mjs');
    expect(handlerFiles.filter((f) => !/^(chunks\/[\w-]+\.mjs|index\.mjs)(\.map)?$/.test(f))).toEqual([]);
    for (const arch of ['x64', 'arm64'] as const) {
      // The native files and the package.json naming their version; onnxruntime's JavaScript is in the bundle.
      expect((await files(built.layers[arch].dir)).sort()).toEqual([
        `nodejs/node_modules/onnxruntime-node/bin/napi-v6/linux/${arch}/libonnxruntime.so.1`,
        `nodejs/node_modules/onnxruntime-node/bin/napi-v6/linux/${arch}/onnxruntime_binding.node`,
        'nodejs/node_modules/onnxruntime-node/package.json',
      ]);
      expect(built.layers[arch].bytes + built.predictor.bytes).toBeLessThan(LAMBDA_LIMITS.unzippedBytes);
      expect(built.layers[arch].zippedBytes).toBeLessThan(LAMBDA_LIMITS.zippedBytes);
    }
    expect(checkLimits(built.predictor, Object.values(built.layers))).toEqual([]);
    expect(
      checkLimits(built.predictor, [built.layers.x64], { unzippedBytes: 10 * MB, zippedBytes: 5 * MB }),
    ).toEqual([
      expect.stringMatching(/^layer onnxruntime-linux-x64 is .* MB zipped, over the 5\.00 MB limit$/),
      expect.stringMatching(
        /^predictor \+ layer onnxruntime-linux-x64 is .* MB unzipped, over the 10\.00 MB limit$/,
      ),
    ]);
  });

  it("takes into a layer only its platform's CPU files: no other OS or architecture, no GPU provider, no JavaScript", () => {
    expect(keepForLayer('bin/napi-v6/linux/x64/onnxruntime_binding.node', 'x64')).toBe(true);
    expect(keepForLayer('bin/napi-v6/linux/x64/libonnxruntime.so.1', 'x64')).toBe(true);
    expect(keepForLayer('bin/napi-v6/linux/arm64/libonnxruntime.so.1', 'arm64')).toBe(true);
    expect(keepForLayer('bin/napi-v6/linux/arm64/libonnxruntime.so.1', 'x64')).toBe(false);
    expect(keepForLayer('bin/napi-v6/darwin/arm64/onnxruntime_binding.node', 'arm64')).toBe(false);
    expect(keepForLayer('bin/napi-v6/win32/x64/onnxruntime.dll', 'x64')).toBe(false);
    // What `npm install` adds for CUDA (the default install here skips it: .npmrc).
    expect(keepForLayer('bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so', 'x64')).toBe(false);
    expect(keepForLayer('bin/napi-v6/linux/x64/libonnxruntime_providers_tensorrt.so', 'x64')).toBe(false);
    expect(keepForLayer('dist/binding.js', 'x64')).toBe(false);
    expect(keepForLayer('package.json', 'x64')).toBe(false);
  });

  it("defines require only in the chunk with esbuild's require helper, its source map shifted by that line", async () => {
    const dir = built.predictor.dir;
    const scripts = (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile() && e.name.endsWith('.mjs'))
      .map((e) => join(e.parentPath, e.name));
    const withBanner: string[] = [];
    for (const file of scripts) {
      const text = await readFile(file, 'utf8');
      if (text.includes('createRequire(import.meta.url)')) withBanner.push(file);
    }
    expect(withBanner).toHaveLength(1);
    const helper = await readFile(withBanner[0] as string, 'utf8');
    expect(helper.split('\n')[0]).toMatch(/^const require=.*createRequire\(import\.meta\.url\);$/);
    expect(helper).toMatch(/typeof require\s*<\s*"u"/);
    const map = JSON.parse(await readFile(`${withBanner[0]}.map`, 'utf8')) as { mappings: string };
    expect(map.mappings.startsWith(';')).toBe(true);
  });

  it('serves a correct inference through the handler from a fresh node, model read from S3', async () => {
    const calls = EVENT_KINDS.flatMap((kind) =>
      (
        [
          ['ready', { method: 'GET', path: '/v2/health/ready' }],
          ['infer', { method: 'POST', path: `/v2/models/${MODEL}/infer`, body: INFER_REQUEST }],
        ] as [string, HttpCall][]
      ).map(([name, call]) => ({
        kind,
        name,
        event: lambdaEvent(kind, { ...call, headers: { 'x-request-id': 'r1' } }),
      })),
    );
    await writeFile(join(root, 'events.json'), JSON.stringify(calls));
    const out = join(root, 'out.json');
    const run = await runNode(
      [join(root, 'driver.mjs'), join(root, 'var/task'), join(root, 'events.json'), out],
      lambdaProcessEnv(lambdaEnv(s3)),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('"message":"model loaded"');

    const report = JSON.parse(await readFile(out, 'utf8')) as {
      results: { kind: string; name: string; result: { statusCode: number; body: string } }[];
      modules: string[];
      builtins: string[];
    };
    expect(report.results).toHaveLength(calls.length);
    // No fetch Request/Response/Headers is built on the way: undici (with tls and http2) loads on their first use,
    // tens of milliseconds of a cold start. Nor worker_threads, which onnxruntime-node loads to read isMainThread.
    expect(report.builtins).toContain('http');
    expect(report.builtins.filter((m) => /undici|^tls$|^http2$|^worker_threads$/.test(m))).toEqual([]);
    // Nor what only an ESM namespace of node:crypto, node:util or node:fs would load (their lazy exports): the bundle
    // takes built-ins through process.getBuiltinModule.
    expect(
      report.builtins.filter((m) => /webcrypto|parse_args|^internal\/mime$|^internal\/fs\/streams$/.test(m)),
    ).toEqual([]);
    for (const { name, result } of report.results) {
      expect(result.statusCode).toBe(200);
      if (name === 'ready') expect(JSON.parse(result.body)).toEqual({ ready: true });
      if (name !== 'infer') continue;
      const body = JSON.parse(result.body);
      expect(body).toMatchObject({ model_name: MODEL, model_version: VERSION, id: 'req-1' });
      expect(body.outputs[0]).toMatchObject({ name: 'y', datatype: 'FP32', shape: [2, 2] });
      for (const [i, v] of EXPECTED.entries()) expect(body.outputs[0].data[i]).toBeCloseTo(v, 5);
    }
    const bodies = new Set(report.results.filter((r) => r.name === 'infer').map((r) => r.result.body));
    expect(bodies.size).toBe(1);
    // The one module loaded from a file outside the bundle is the layer's native binding: no JavaScript from the
    // layer, nothing (and no AWS SDK) from anywhere else.
    expect(report.modules).toEqual([
      join(
        root,
        `opt/nodejs/node_modules/onnxruntime-node/bin/napi-v6/linux/${ARCH}/onnxruntime_binding.node`,
      ),
    ]);
  });

  it('reaches its first answers, logged and counted, without the chunks of zod, semver, the two schemas and powertools (they load only on demand)', async () => {
    // The same bundle with those chunks deleted: a cold start or a well-formed request that needed one would fail.
    const lean = join(work.dir, 'lean-task');
    await cp(built.predictor.dir, lean, { recursive: true });
    const lazy = Object.entries(built.metafile.outputs)
      .filter(([path, o]) => path.endsWith('.mjs') && Object.keys(o.inputs).some((i) => ON_DEMAND.test(i)))
      .map(([path]) => basename(path));
    expect(lazy.length).toBeGreaterThanOrEqual(4);
    expect(lazy).not.toContain('index.mjs');
    for (const chunk of lazy) await rm(join(lean, 'chunks', chunk));
    const calls = [
      {
        kind: 'function-url',
        name: 'ready',
        event: lambdaEvent('function-url', { method: 'GET', path: '/v2/health/ready' }),
      },
      {
        kind: 'function-url',
        name: 'infer',
        event: lambdaEvent('function-url', {
          method: 'POST',
          path: `/v2/models/${MODEL}/infer`,
          body: INFER_REQUEST,
        }),
      },
    ];
    await writeFile(join(root, 'lean-events.json'), JSON.stringify(calls));
    const out = join(root, 'lean-out.json');
    const run = await runNode(
      [join(root, 'driver.mjs'), lean, join(root, 'lean-events.json'), out],
      lambdaProcessEnv({ ...lambdaEnv(s3), LAMBDA_TASK_ROOT: lean }),
    );
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(await readFile(out, 'utf8')) as {
      results: { name: string; result: { statusCode: number; body: string } }[];
    };
    expect(report.results.map((r) => r.result.statusCode)).toEqual([200, 200]);
    const outputs = JSON.parse(report.results[1]?.result.body ?? '{}').outputs;
    for (const [i, v] of EXPECTED.entries()) expect(outputs[0].data[i]).toBeCloseTo(v, 5);
    // Every line in powertools' format: the model loaded, one line per request (the first a cold start), the
    // inference request's EMF document.
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.message ?? (l._aws ? 'emf' : '?'))).toEqual([
      'model loaded',
      'request',
      'request',
      'emf',
    ]);
    expect(lines.slice(1, 3).map((l) => l.cold_start)).toEqual([true, false]);
    expect(lines[3]).toMatchObject({ model: MODEL, version: VERSION, Requests: 1, BatchSize: 2 });
  });

  it("finds onnxruntime's native binding through NODE_PATH only: without it the import fails and says which layer to attach", async () => {
    const run = await importHandler(lambdaProcessEnv(lambdaEnv(s3), false));
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(
      `Cannot find module 'onnxruntime-node/bin/napi-v6/linux/${ARCH}/onnxruntime_binding.node'`,
    );
    expect(run.stderr).toContain(
      `maap: onnxruntime's native binding comes from the onnxruntime layer: attach the onnxruntime layer of the same build as this function (dist/layers/onnxruntime-linux-${ARCH})`,
    );
  });

  /** Imports the handler with `layer` (a copy of the built one, changed by `change`) as the onnxruntime layer. */
  async function importWithLayer(name: string, change: (packageJson: string) => Promise<void>) {
    const layer = join(work.dir, name);
    await cp(built.layers[ARCH].dir, layer, { recursive: true });
    await change(join(layer, 'nodejs/node_modules/onnxruntime-node/package.json'));
    return importHandler({
      ...lambdaProcessEnv(lambdaEnv(s3)),
      NODE_PATH: join(layer, 'nodejs/node_modules'),
    });
  }

  it('refuses a layer of another onnxruntime-node version than the one bundled, naming both', async () => {
    const run = await importWithLayer('other-version', (file) =>
      writeFile(file, JSON.stringify({ name: 'onnxruntime-node', version: '1.19.2' })),
    );
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(
      `holds onnxruntime-node 1.19.2, but this predictor bundles onnxruntime-node ${BUNDLED_ORT}: attach the onnxruntime layer of the same build as this function (dist/layers/onnxruntime-linux-${ARCH})`,
    );
  });

  it('refuses a layer whose version it cannot read, and says why', async () => {
    const run = await importWithLayer('no-version', (file) => rm(file));
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(
      /holds no readable package\.json naming its onnxruntime-node version \(ENOENT: no such file or directory.*\), but this predictor bundles onnxruntime-node/,
    );
  });

  it("writes the layer's package.json with the bundled version, and no entry point the layer has no file for", async () => {
    const manifest = join(built.layers[ARCH].dir, 'nodejs/node_modules/onnxruntime-node/package.json');
    expect(JSON.parse(await readFile(manifest, 'utf8'))).toEqual({
      name: 'onnxruntime-node',
      version: BUNDLED_ORT,
    });
  });
});
