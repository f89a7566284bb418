/**
 * Serving benchmark: requests/s and p50/p99 latency of `maap serve` under autocannon, against a bare
 * node:http server that calls `session.run` on the same model (bench/bare-server.ts), measured in the same
 * run, alternating, on a small model (run ≪ 1 ms) and on a model whose run takes more than 1 ms.
 * Both servers run in their own process with the same onnxruntime options (maap's `sessionOptions`, one intra-op
 * thread: the load generator needs the other core of a 2-core machine). Loopback only; every run is bounded in
 * time. Each of `--rounds` rounds measures both servers back to back (in alternating order) and gives a ratio; the
 * median of those ratios is the figure held against the goal, as a shared machine's slow and quiet phases hit both
 * sides of a round alike. Each server's best round is printed too. Besides requests/s and
 * latency, each server's CPU time per request is read from /proc (Linux): the cost the ratio comes from.
 *
 * `--instructions` measures instead, once per server under valgrind's callgrind, the instructions each executes
 * per request once warmed up: far steadier than times on a shared machine (see instructions.ts).
 *
 *   npm run bench:serve [-- --seconds 10 --connections 8 --rounds 5 --model small|heavy --verbose --instructions]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import * as ort from 'onnxruntime-node';
import { sessionOptions } from '../lib/inference/model.ts';
import { encodeModel } from '../lib/onnx/builder.ts';
import { packModel } from '../lib/package/pack.ts';
import { mlpModel } from '../test/fixtures/models.ts';
import {
  callgrindAvailable,
  callgrindCommand,
  countFrom,
  dumpCounts,
  totalInstructions,
} from './instructions.ts';
import { quantile } from './stats.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const seconds = arg('seconds', 10);
const connections = arg('connections', 8);
const rounds = arg('rounds', 5);
/** The throughput each model's maap serve must reach, as a share of the bare server's. */
const GOALS = { small: 0.85, heavy: 0.95 } as const;
const only = process.argv.includes('--model') ? process.argv[process.argv.indexOf('--model') + 1] : undefined;
const verbose = process.argv.includes('--verbose');
const instructions = process.argv.includes('--instructions');

/**
 * A perceptron [batch, 256] → 2048 → 2048 → 2048 → 16 (~8.9 M weights, ~140 MFLOP per batch of 8): more than
 * 1 ms per run on one core (the run time is measured and printed), while the request body (8 × 256 numbers,
 * ~8 KB) stays small, so that compute dominates.
 */
function heavyModel(): Buffer {
  const dense = (name: string, rows: number, cols: number) => {
    const data = new Float32Array(rows * cols);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 12.9898) * 0.05;
    return { name, elemType: 'FLOAT' as const, dims: [rows, cols], data };
  };
  const sizes = [256, 2048, 2048, 2048, 16];
  const initializers = [];
  const nodes = [];
  let input = 'x';
  for (let i = 1; i < sizes.length; i++) {
    initializers.push(dense(`w${i}`, sizes[i - 1] as number, sizes[i] as number));
    const last = i === sizes.length - 1;
    nodes.push({ opType: 'MatMul', inputs: [input, `w${i}`], outputs: [last ? 'y' : `h${i}`] });
    if (!last) {
      nodes.push({ opType: 'Relu', inputs: [`h${i}`], outputs: [`a${i}`] });
      input = `a${i}`;
    }
  }
  return encodeModel({
    graph: {
      name: 'heavy',
      inputs: [{ name: 'x', elemType: 'FLOAT', shape: ['batch', 256] }],
      outputs: [{ name: 'y', elemType: 'FLOAT', shape: ['batch', 16] }],
      initializers,
      nodes,
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
  const session = await ort.InferenceSession.create(onnx, sessionOptions({ intraOpThreads: 1 }));
  const feeds = { [input]: new ort.Tensor('float32', Float32Array.from(data), [batch, features]) };
  for (let i = 0; i < 20; i++) await session.run(feeds);
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) await session.run(feeds);
  const runMs = (performance.now() - t0) / 200;
  await session.release();
  return { label, onnx, pkg, input, body, runMs };
}

/**
 * Starts a server process and waits for the URL it prints. Its stdout (maap's request log and EMF lines) goes to
 * a file, as a log shipper would take it, rather than through this process: here it would compete with the load
 * generator for the same core.
 */
async function startChild(
  args: string[],
  stdoutFile: string,
  callgrind?: { outFile: string; logFile: string },
): Promise<{ child: ChildProcess; url: string }> {
  const out = await open(stdoutFile, 'w');
  // `node --import tsx`, not the tsx CLI (which runs the script in a grandchild): the server is this child.
  const node = { command: process.execPath, args: ['--import', 'tsx', ...args] };
  // Under callgrind, nothing is counted until countFrom(): start-up and warm-up stay out.
  const { command, args: argv } = callgrind
    ? callgrindCommand(node.command, node.args, callgrind, false)
    : node;
  const startTimeoutMs = callgrind ? 300_000 : 30_000;
  const child = spawn(command, argv, {
    env: process.env,
    stdio: ['ignore', out.fd, 'inherit'],
  });
  await out.close();
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(async () => {
      const text = await readFile(stdoutFile, 'utf8').catch(() => '');
      const url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1];
      if (url) {
        clearInterval(poll);
        child.removeAllListeners('exit');
        resolve({ child, url });
      } else if (Date.now() - started > startTimeoutMs) {
        clearInterval(poll);
        child.removeAllListeners('exit');
        child.kill('SIGKILL');
        reject(new Error(`server did not start: ${text}`));
      }
    }, 50);
    child.on('exit', (code) => {
      clearInterval(poll);
      reject(new Error(`server exited with ${code}`));
    });
  });
}

/** SIGTERM (maap shuts down gracefully), then SIGKILL if the process is still there a minute later. */
async function stopChild(child: ChildProcess): Promise<void> {
  child.removeAllListeners('exit');
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await exited;
  clearTimeout(timer);
}

/** CPU time (user + system, ms) the process has used so far, from /proc; undefined off Linux. */
async function cpuMs(pid: number | undefined): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (pid === undefined || stat === undefined) return undefined;
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in ticks.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}
/** USER_HZ: 100 on every Linux build Node runs on. */
const CLOCK_TICKS = 100;

async function load(url: string, body: string, pid: number | undefined) {
  const opts = {
    url,
    method: 'POST' as const,
    body,
    headers: { 'content-type': 'application/json' },
    connections,
  };
  const warmUp = await autocannon({ ...opts, duration: 2 });
  const cpuBefore = await cpuMs(pid);
  const result = await autocannon({ ...opts, duration: seconds });
  const cpuAfter = await cpuMs(pid);
  if (result.non2xx > 0 || result.errors > 0)
    throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  const cpuUsPerRequest =
    cpuBefore === undefined || cpuAfter === undefined
      ? Number.NaN
      : ((cpuAfter - cpuBefore) * 1000) / result.requests.total;
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUs: cpuUsPerRequest,
    requests: warmUp.requests.total + result.requests.total,
  };
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  /** Server CPU time per request (µs), in the measured run. */
  cpuUs: number;
  /** Bytes the server wrote to stdout per request (maap: its request log and EMF documents). */
  logBytes: number;
}

/** The command line of each server for case `c` (bare first), and the URL path its inference requests go to. */
function servers(c: Case): { kind: 'bare' | 'maap'; args: string[]; path: string }[] {
  return [
    { kind: 'bare', args: [join(root, 'bench/bare-server.ts'), c.onnx, c.input, '1'], path: '/infer' },
    {
      kind: 'maap',
      args: [join(root, 'bin/maap.ts'), 'serve', c.pkg, '--port', '0', '--threads', '1'],
      path: `/v2/models/${c.label}/infer`,
    },
  ];
}

/** Under callgrind: requests before counting (two runs, see measureInstructions), then requests counted. */
const WARM_UP_REQUESTS = 8000;
const COUNTED_REQUESTS = 3000;

/**
 * Instructions per request of each server, under callgrind: WARM_UP_REQUESTS (uncounted) let V8 optimise, then
 * COUNTED_REQUESTS are counted. Requests by number, not by time: under valgrind a server runs ~50x slower.
 */
async function measureInstructions(dir: string, cases: Case[]): Promise<void> {
  if (!callgrindAvailable()) {
    console.log('--instructions: valgrind (callgrind) is not installed: apt-get install valgrind');
    return;
  }
  console.log(`callgrind: ${connections} connections, requests counted after a warm-up, each server once\n`);
  console.log(
    `${'model'.padEnd(8)}${'server'.padStart(8)}${'warm-up'.padStart(9)}${'counted'.padStart(9)}${'instructions/req'.padStart(18)}${'ratio'.padStart(8)}`,
  );
  for (const c of cases) {
    if (c.runMs > 0.5) {
      // Its matrix products (AVX at full speed) run hundreds of times slower under valgrind: a warmed-up count
      // would take the better part of an hour.
      console.log(`${c.label.padEnd(8)}  skipped: its runs are too slow under valgrind`);
      continue;
    }
    const perRequest: Record<string, number> = {};
    for (const server of servers(c)) {
      const files = {
        outFile: join(dir, `${c.label}-${server.kind}.callgrind`),
        logFile: join(dir, `${c.label}-${server.kind}.valgrind.log`),
      };
      const logFile = join(dir, `${c.label}-${server.kind}-callgrind.log`);
      const { child, url } = await startChild(server.args, logFile, files);
      const pid = child.pid as number;
      try {
        const opts = {
          url: `${url}${server.path}`,
          method: 'POST' as const,
          body: c.body,
          headers: { 'content-type': 'application/json' },
          connections,
          timeout: 60,
        };
        // Twice: when the first run's connections close and new ones open, V8 deoptimises and recompiles parts of
        // Node's http and stream code; the second run lets that settle before anything is counted.
        const runs = [
          await autocannon({ ...opts, amount: WARM_UP_REQUESTS / 2 }),
          await autocannon({ ...opts, amount: WARM_UP_REQUESTS / 2 }),
        ];
        await countFrom(pid);
        const result = await autocannon({ ...opts, amount: COUNTED_REQUESTS });
        await dumpCounts(pid);
        runs.push(result);
        for (const [i, r] of runs.entries()) {
          if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0)
            throw new Error(
              `${server.kind}, ${i < 2 ? `warm-up run ${i + 1}` : 'counted run'}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`,
            );
        }
        const total = await totalInstructions(`${files.outFile}.1`);
        perRequest[server.kind] = total / result.requests.total;
      } finally {
        await stopChild(child);
      }
      const n = perRequest[server.kind] as number;
      const ratio = server.kind === 'maap' ? `${((perRequest.bare as number) / n).toFixed(2)}x` : '1.00x';
      console.log(
        `${c.label.padEnd(8)}${server.kind.padStart(8)}${String(WARM_UP_REQUESTS).padStart(9)}${String(COUNTED_REQUESTS).padStart(9)}${Math.round(n).toLocaleString('en-US').padStart(18)}${ratio.padStart(8)}`,
      );
    }
  }
  console.log(
    '\nratio: bare instructions per request / maap instructions per request (user-space, every thread: no kernel' +
      '\ntime, no cache misses). At ~50x slower, what maap does by the clock (a log timestamp per millisecond, the' +
      '\nlog written out every 50 ms) falls on fewer requests than at full speed and counts against it.',
  );
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'maap-bench-serve-'));
  try {
    const cases = [];
    if (only === undefined || only === 'small')
      cases.push(await prepare(dir, 'small', mlpModel().bytes, 'x', 4, 4));
    if (only === undefined || only === 'heavy')
      cases.push(await prepare(dir, 'heavy', heavyModel(), 'x', 8, 256));
    if (instructions) {
      await measureInstructions(dir, cases);
      return;
    }
    const verdicts: string[] = [];
    console.log(
      `autocannon: ${connections} connections, ${seconds} s per run (after 2 s warm-up), ${rounds} rounds alternating\n`,
    );
    console.log(
      `${'model'.padEnd(8)}${'run ms'.padStart(8)}${'server'.padStart(8)}${'req/s'.padStart(9)}${'p50 ms'.padStart(8)}${'p99 ms'.padStart(8)}${'ratio'.padStart(8)}${'CPU µs/req'.padStart(12)}${'log B/req'.padStart(11)}`,
    );
    for (const c of cases) {
      const none: Figures = { rps: 0, p50: 0, p99: 0, cpuUs: Number.NaN, logBytes: 0 };
      const best = { maap: none, bare: none };
      // Each round's maap/bare ratio: both measured back to back, so a slow phase of the machine hits both; the
      // order alternates (bare first in odd rounds, maap first in even ones), so that a machine getting faster or
      // slower through the run favours neither.
      const paired: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const rps = { bare: 0, maap: 0 };
        const order = round % 2 === 0 ? servers(c) : servers(c).reverse();
        for (const server of order) {
          const kind = server.kind;
          const logFile = join(dir, `${c.label}-${kind}-${round}.log`);
          const { child, url } = await startChild(server.args, logFile);
          let r: Awaited<ReturnType<typeof load>> | undefined;
          try {
            r = await load(`${url}${server.path}`, c.body, child.pid);
          } finally {
            await stopChild(child);
          }
          // After the server exited: its last lines (flushed at shutdown) are in the file.
          const logBytes = (await stat(logFile)).size / r.requests;
          if (verbose) {
            console.log(
              `  round ${round + 1} ${c.label} ${kind}: ${r.rps.toFixed(0)} req/s, ${r.cpuUs.toFixed(1)} µs CPU/req`,
            );
          }
          if (r.rps > best[kind].rps) best[kind] = { ...r, logBytes };
          rps[kind] = r.rps;
        }
        paired.push(rps.maap / rps.bare);
      }
      const median = quantile(paired, 0.5);
      const goal = GOALS[c.label as keyof typeof GOALS];
      verdicts.push(
        `${c.label}: median ${median.toFixed(2)}x of ${paired.length} rounds (${paired.map((x) => `${x.toFixed(2)}x`).join(', ')}), goal ≥ ${goal}: ${median >= goal ? 'met' : 'NOT met'}`,
      );
      for (const kind of ['bare', 'maap'] as const) {
        const r = best[kind];
        const ratio = kind === 'maap' ? `${(r.rps / best.bare.rps).toFixed(2)}x` : '1.00x';
        console.log(
          `${c.label.padEnd(8)}${c.runMs.toFixed(3).padStart(8)}${kind.padStart(8)}${r.rps.toFixed(0).padStart(9)}${String(r.p50).padStart(8)}${String(r.p99).padStart(8)}${ratio.padStart(8)}${r.cpuUs.toFixed(1).padStart(12)}${r.logBytes.toFixed(0).padStart(11)}`,
        );
      }
    }
    console.log(`\nratio of each round (maap and bare back to back):\n  ${verdicts.join('\n  ')}`);
    console.log(
      '\nratio: maap serve throughput / bare node:http + session.run throughput (goal ≥ 0.85 small, ≥ 0.95 heavy),' +
        "\nthe median of the rounds; the table shows each server's best round, whose ratio a lucky quiet window can" +
        '\ntilt either way on a shared machine.' +
        "\nrun ms: one session.run of the request batch, measured here; CPU µs/req: the server process's CPU time" +
        '\nper request in that run (from /proc); log B/req: stdout bytes per request.',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
