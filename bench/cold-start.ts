/**
 * Cold-start benchmark of the Lambda predictor: a fresh `node` process, from spawn to the first correct inference
 * response through the built bundle (`dist/predictor/index.mjs` laid out as on Lambda, the onnxruntime layer in
 * `/opt/nodejs/node_modules`, the model package read from s3rver on 127.0.0.1), against a bare `node` script that
 * loads onnxruntime-node from the same layer, creates the session from the same model.onnx file and runs once.
 * Runs alternate; prints median and p90 of each and their ratio. Goal: Lambda bundle ≤ 1.3× the bare script.
 *
 *   npm run bench:cold-start [-- --runs 10] [-- --no-build]
 */
import { spawn } from 'node:child_process';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, ROOT } from '../scripts/build.ts';
import { mlpModel } from '../test/fixtures/models.ts';
import { tempDir } from '../test/helpers/packages.ts';
import { start as startS3 } from '../test/helpers/s3rver.ts';
import { lambdaEvent } from '../test/runtime/lambda-events.ts';
import { EXPECTED, INFER_REQUEST, lambdaEnv, MODEL, publishMlp } from '../test/runtime/mlp-registry.ts';

const GOAL = 1.3;
const runsArg = process.argv.indexOf('--runs');
const RUNS = Math.min(100, Math.max(1, runsArg > 0 ? Number(process.argv[runsArg + 1]) : 10));
const REBUILD = !process.argv.includes('--no-build');
const TIMEOUT_MS = 60_000;

/** Imports the handler, invokes it once, hands the response to the parent on fd 3. */
const LAMBDA_DRIVER = `
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const { handler } = await import(pathToFileURL(process.env.LAMBDA_TASK_ROOT + '/index.mjs').href);
const result = await handler(JSON.parse(process.env.BENCH_EVENT), { awsRequestId: 'bench', getRemainingTimeInMillis: () => 30000 });
writeSync(3, JSON.parse(result.body).outputs?.[0]?.data ? JSON.stringify(JSON.parse(result.body).outputs[0].data) : result.body);
`;

/** The bare baseline: onnxruntime-node, one session from the file, one run. */
const BARE_SCRIPT = `
import { createRequire } from 'node:module';
import { writeSync } from 'node:fs';
const ort = createRequire(import.meta.url)('onnxruntime-node');
const session = await ort.InferenceSession.create(process.env.BENCH_MODEL);
const input = JSON.parse(process.env.BENCH_INPUT);
const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from(input.data.flat()), input.shape) });
writeSync(3, JSON.stringify(Array.from(out.y.data)));
`;

/** Spawns `node script` and resolves with the ms from spawn to the answer on fd 3 (and the answer). */
function timeProcess(
  script: string,
  cwd: string,
  env: Record<string, string>,
): Promise<{ ms: number; answer: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let answer = '';
    let answeredAt = 0;
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d) => {
      answeredAt ||= performance.now();
      answer += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 || !answeredAt)
        reject(new Error(`${script} exited with ${code}: ${stderr.slice(-2000)}`));
      else resolve({ ms: answeredAt - t0, answer, stdout });
    });
  });
}

function isCorrect(answer: string): boolean {
  const data = JSON.parse(answer) as unknown;
  return (
    Array.isArray(data) &&
    data.length === EXPECTED.length &&
    EXPECTED.every((v, i) => Math.abs(Number(data[i]) - v) < 1e-5)
  );
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const work = await tempDir('maap-cold-start-');
  const s3 = await startS3();
  try {
    const built = REBUILD ? await build({ print: false }) : undefined;
    const dist = built?.outDir ?? join(ROOT, 'dist');
    const root = join(work.dir, 'lambda');
    await cp(join(dist, 'predictor'), join(root, 'var/task'), { recursive: true });
    await cp(join(dist, 'layers', `onnxruntime-linux-${process.arch}`), join(root, 'opt'), {
      recursive: true,
    });
    await publishMlp(s3, work.dir);
    const modelFile = join(root, 'model.onnx');
    await writeFile(modelFile, mlpModel().bytes);
    await writeFile(join(root, 'lambda-driver.mjs'), LAMBDA_DRIVER);
    await writeFile(join(root, 'bare.mjs'), BARE_SCRIPT);

    const base = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LAMBDA_TASK_ROOT: join(root, 'var/task'),
      NODE_PATH: [join(root, 'opt/nodejs/node22/node_modules'), join(root, 'opt/nodejs/node_modules')].join(
        ':',
      ),
    };
    const event = lambdaEvent('function-url', {
      method: 'POST',
      path: `/v2/models/${MODEL}/infer`,
      body: INFER_REQUEST,
    });
    const lambdaProcessEnv = {
      ...base,
      ...lambdaEnv(s3),
      AWS_LAMBDA_FUNCTION_NAME: 'maap-predictor',
      BENCH_EVENT: JSON.stringify(event),
    };
    const bareEnv = { ...base, BENCH_MODEL: modelFile, BENCH_INPUT: JSON.stringify(INFER_REQUEST.inputs[0]) };

    // One unmeasured run of each warms the page cache.
    await timeProcess(join(root, 'lambda-driver.mjs'), join(root, 'var/task'), lambdaProcessEnv);
    await timeProcess(join(root, 'bare.mjs'), join(root, 'var/task'), bareEnv);

    const lambda: number[] = [];
    const bare: number[] = [];
    const phases: Record<string, number[]> = { verify_ms: [], session_ms: [], load_ms: [], init_ms: [] };
    for (let i = 0; i < RUNS; i++) {
      const l = await timeProcess(join(root, 'lambda-driver.mjs'), join(root, 'var/task'), lambdaProcessEnv);
      if (!isCorrect(l.answer)) throw new Error(`wrong answer from the Lambda bundle: ${l.answer}`);
      lambda.push(l.ms);
      const loaded = l.stdout.split('\n').find((line) => line.includes('"model loaded"'));
      if (loaded) for (const [k, v] of Object.entries(phases)) v.push(Number(JSON.parse(loaded)[k]));
      const b = await timeProcess(join(root, 'bare.mjs'), join(root, 'var/task'), bareEnv);
      if (!isCorrect(b.answer)) throw new Error(`wrong answer from the bare script: ${b.answer}`);
      bare.push(b.ms);
    }

    const row = (label: string, values: number[]) =>
      `${label.padEnd(44)} ${quantile(values, 0.5).toFixed(1).padStart(8)} ${quantile(values, 0.9).toFixed(1).padStart(8)}`;
    const ratio = quantile(lambda, 0.5) / quantile(bare, 0.5);
    console.log(
      `cold start, spawn → first correct response, ${RUNS} runs each (alternating), node ${process.version}, ${process.platform}-${process.arch}`,
    );
    console.log(`${''.padEnd(44)} ${'median'.padStart(8)} ${'p90'.padStart(8)}  (ms)`);
    console.log(row('Lambda bundle + layer, model from s3rver', lambda));
    console.log(row('bare node + onnxruntime-node, model file', bare));
    for (const [k, v] of Object.entries(phases))
      if (v.length) console.log(row(`  in the bundle's init: ${k}`, v));
    console.log(
      `ratio (median): ${ratio.toFixed(2)}x   ratio (p90): ${(quantile(lambda, 0.9) / quantile(bare, 0.9)).toFixed(2)}x   goal: <= ${GOAL}x → ${ratio <= GOAL ? 'met' : 'NOT met'}`,
    );
  } finally {
    await s3.stop();
    await work.cleanup();
  }
}

await main();
// s3rver's sockets may linger: the figures are printed, leave now.
process.exit(0);
