/**
 * Serving benchmark: requests/s and p50/p99 latency of `maap serve` under autocannon, against a bare
 * node:http server that calls `session.run` on the same model (bench/bare-server.ts), measured in the same
 * run, alternating, on a small model (run ≪ 1 ms) and on a model whose run takes more than 1 ms.
 * Both servers run in their own process with the same onnxruntime options (one intra-op thread: the load
 * generator needs the other core of a 2-core machine). Loopback only; every run is bounded in time.
 *
 *   npm run bench:serve [-- --seconds 10 --connections 8]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../lib/onnx/builder.ts';
import { packModel } from '../lib/package/pack.ts';
import { mlpModel } from '../test/fixtures/models.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const seconds = arg('seconds', 10);
const connections = arg('connections', 8);
const rounds = arg('rounds', 2);

/** A 3-layer perceptron, [batch, 256] → 1024 → 1024 → 16: a few ms per batch of 8 on one core. */
function heavyModel(): Buffer {
  const dense = (name: string, rows: number, cols: number) => {
    const data = new Float32Array(rows * cols);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 12.9898) * 0.05;
    return { name, elemType: 'FLOAT' as const, dims: [rows, cols], data };
  };
  return encodeModel({
    graph: {
      name: 'heavy',
      inputs: [{ name: 'x', elemType: 'FLOAT', shape: ['batch', 256] }],
      outputs: [{ name: 'y', elemType: 'FLOAT', shape: ['batch', 16] }],
      initializers: [dense('w1', 256, 1024), dense('w2', 1024, 1024), dense('w3', 1024, 16)],
      nodes: [
        { opType: 'MatMul', inputs: ['x', 'w1'], outputs: ['h1'] },
        { opType: 'Relu', inputs: ['h1'], outputs: ['a1'] },
        { opType: 'MatMul', inputs: ['a1', 'w2'], outputs: ['h2'] },
        { opType: 'Relu', inputs: ['h2'], outputs: ['a2'] },
        { opType: 'MatMul', inputs: ['a2', 'w3'], outputs: ['y'] },
      ],
    },
  });
}

interface Case {
  label: string;
  onnx: string;
  pkg: string;
  input: string;
  body: string;
  runMs: number;
}

async function prepare(
  dir: string,
  label: string,
  bytes: Buffer,
  input: string,
  batch: number,
  features: number,
): Promise<Case> {
  const onnx = join(dir, `${label}.onnx`);
  await writeFile(onnx, bytes);
  const pkg = join(dir, `${label}.maap`);
  await packModel(onnx, { name: label, version: '1.0.0', out: pkg });
  const data = Array.from({ length: batch * features }, (_, i) => (i % 7) * 0.25);
  const body = JSON.stringify({
    inputs: [{ name: input, datatype: 'FP32', shape: [batch, features], data }],
  });
  // How long one session.run takes here, to show which regime each model is in.
  const session = await ort.InferenceSession.create(onnx, {
    intraOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const feeds = { [input]: new ort.Tensor('float32', Float32Array.from(data), [batch, features]) };
  for (let i = 0; i < 20; i++) await session.run(feeds);
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) await session.run(feeds);
  const runMs = (performance.now() - t0) / 200;
  await session.release();
  return { label, onnx, pkg, input, body, runMs };
}

function startChild(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(join(root, 'node_modules/.bin/tsx'), args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
      if (url) {
        clearTimeout(timer);
        child.stdout?.removeAllListeners('data');
        child.stdout?.resume(); // discard the per-request log lines
        resolve({ child, url });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  child.removeAllListeners('exit');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function load(url: string, body: string) {
  const opts = {
    url,
    method: 'POST' as const,
    body,
    headers: { 'content-type': 'application/json' },
    connections,
  };
  await autocannon({ ...opts, duration: 2 }); // warm-up
  const result = await autocannon({ ...opts, duration: seconds });
  if (result.non2xx > 0 || result.errors > 0)
    throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99 };
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'maap-bench-serve-'));
  try {
    const cases = [
      await prepare(dir, 'small', mlpModel().bytes, 'x', 4, 4),
      await prepare(dir, 'heavy', heavyModel(), 'x', 8, 256),
    ];
    console.log(
      `autocannon: ${connections} connections, ${seconds} s per run (after 2 s warm-up), ${rounds} rounds alternating\n`,
    );
    console.log(
      `${'model'.padEnd(8)}${'run ms'.padStart(8)}${'server'.padStart(8)}${'req/s'.padStart(9)}${'p50 ms'.padStart(8)}${'p99 ms'.padStart(8)}${'ratio'.padStart(8)}`,
    );
    for (const c of cases) {
      const best = { maap: { rps: 0, p50: 0, p99: 0 }, bare: { rps: 0, p50: 0, p99: 0 } };
      for (let round = 0; round < rounds; round++) {
        for (const kind of ['bare', 'maap'] as const) {
          const { child, url } =
            kind === 'maap'
              ? await startChild([join(root, 'bin/maap.ts'), 'serve', c.pkg, '--port', '0', '--threads', '1'])
              : await startChild([join(root, 'bench/bare-server.ts'), c.onnx, c.input, '1']);
          try {
            const target = kind === 'maap' ? `${url}/v2/models/${c.label}/infer` : `${url}/infer`;
            const r = await load(target, c.body);
            if (r.rps > best[kind].rps) best[kind] = r;
          } finally {
            await stopChild(child);
          }
        }
      }
      for (const kind of ['bare', 'maap'] as const) {
        const r = best[kind];
        const ratio = kind === 'maap' ? `${(r.rps / best.bare.rps).toFixed(2)}x` : '1.00x';
        console.log(
          `${c.label.padEnd(8)}${c.runMs.toFixed(3).padStart(8)}${kind.padStart(8)}${r.rps.toFixed(0).padStart(9)}${String(r.p50).padStart(8)}${String(r.p99).padStart(8)}${ratio.padStart(8)}`,
        );
      }
    }
    console.log(
      '\nratio: maap serve throughput / bare node:http + session.run throughput (goal ≥ 0.85 small, ≥ 0.95 heavy).',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
