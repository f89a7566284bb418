/**
 * Serving benchmark: requests/s and p50/p99 latency of `maap serve` under autocannon, against a bare
 * node:http server that calls `session.run` on the same model (bench/bare-server.ts), measured in the same
 * run, on a small model (run ≪ 1 ms) and on a model whose run takes more than 1 ms.
 * Both servers run in their own process with the same onnxruntime options (maap's `sessionOptions`, one intra-op
 * thread: the load generator needs the other core of a 2-core machine), side by side, pinned to one core (the load
 * generator to another, see `pinning`), and are loaded in turn in short slices (bare maap, maap bare, bare maap...),
 * in a few sessions of fresh processes. Each pair of slices gives a ratio; the median of those ratios is the figure
 * held against the goal. A shared machine's slow and quiet phases last seconds: slices of a second put
 * both servers in the same phase far more often than long runs one after the other (which gave rounds from 0.4x to
 * 1.3x in one run). Loopback only; every run is bounded in time. Besides requests/s and latency, each server's CPU
 * time per request is read from /proc (Linux): the cost the ratio comes from.
 *
 * `--instructions` measures instead, once per server under valgrind's callgrind, the instructions each executes
 * per request once warmed up: far steadier than times on a shared machine (see instructions.ts).
 *
 *   npm run bench:serve [-- --slices 35 --restarts 7 --slice-seconds 1 --connections 8 --model small|heavy --no-pin
 *                        --verbose --instructions]
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
const sliceSeconds = Math.max(1, Math.round(arg('slice-seconds', 1)));
const connections = arg('connections', 8);
const slices = arg('slices', 35);
// Seven sessions of five pairs, not three of eleven: two processes of the same server, started the same way, differ
// here for their whole life (five bare servers side by side, 16 rounds: up to 7% in req/s, 56-62 µs CPU a request),
// so the spread between sessions, not between slices, is what most moves the median.
const restarts = Math.max(1, Math.min(slices, arg('restarts', 7)));
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
    : pinning
      ? { command: 'taskset', args: ['--cpu-list', SERVER_CPU as string, node.command, ...node.args] }
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

/** One slice of load on one server: requests/s, latency, and the server's CPU time per request. */
async function slice(url: string, body: string, pid: number | undefined, duration: number) {
  const cpuBefore = await cpuMs(pid);
  const result = await autocannon({
    url,
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
    connections,
    duration,
  });
  const cpuAfter = await cpuMs(pid);
  if (result.non2xx > 0 || result.errors > 0)
    throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return {
    // autocannon stops on its own one-second ticks: divided by the time it actually ran, not the one asked for.
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuMs: cpuBefore === undefined || cpuAfter === undefined ? Number.NaN : cpuAfter - cpuBefore,
    requests: result.requests.total,
  };
}
type Slice = Awaited<ReturnType<typeof slice>>;

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

/**
 * Where each process runs: both servers (every thread of theirs) on one core, the load generator (this process)
 * on another. Left to the scheduler, the two servers landed on different cores in turn and swapped speeds for
 * stretches of ten seconds (the heavy model's run is bound by memory: 1.6 ms on one placement, 2.4 ms on another),
 * which no interleaving of slices evens out. Needs Linux, taskset and two allowed CPUs on different physical cores
 * (hyperthreads of one core share its units): the first allowed CPU takes the load generator, the next one outside
 * its core the servers. Otherwise, with `--no-pin`, and under `--instructions` (callgrind counts, it does not time),
 * nothing is pinned, and the first line printed says so.
 */
const [LOADER_CPU, SERVER_CPU] =
  process.argv.includes('--no-pin') || instructions ? [] : cpusOnTwoCores(allowedCpus());
const pinning =
  LOADER_CPU !== undefined &&
  SERVER_CPU !== undefined &&
  spawnSync('taskset', ['--all-tasks', '--cpu-list', '--pid', LOADER_CPU, String(process.pid)]).status === 0;

/** The CPUs this process may run on (taskset's list, ranges expanded), or none where taskset is missing. */
function allowedCpus(): string[] {
  if (process.platform !== 'linux') return [];
  const out = spawnSync('taskset', ['--cpu-list', '--pid', String(process.pid)], { encoding: 'utf8' });
  const list = out.status === 0 ? /:\s*([\d,-]+)\s*$/.exec(out.stdout)?.[1] : undefined;
  return list === undefined ? [] : expandCpuList(list);
}

/** `0-2,5` → 0, 1, 2, 5. */
function expandCpuList(list: string): string[] {
  return list.split(',').flatMap((part) => {
    const [from, to = from] = part.split('-').map(Number) as [number, number?];
    return Array.from({ length: (to as number) - from + 1 }, (_, i) => String(from + i));
  });
}

/** The first of `cpus` and the next one not a hyperthread of the same core, or none. */
function cpusOnTwoCores(cpus: string[]): string[] {
  const [first] = cpus;
  if (first === undefined) return [];
  let siblings = [first];
  try {
    siblings = expandCpuList(
      readFileSync(`/sys/devices/system/cpu/cpu${first}/topology/thread_siblings_list`, 'utf8').trim(),
    );
  } catch {
    // no topology in sysfs: take every CPU as its own core
  }
  const other = cpus.find((cpu) => !siblings.includes(cpu));
  return other === undefined ? [] : [first, other];
}

/** Seconds of load each server gets before its slices are measured (V8 optimises the request path). */
const WARM_UP_SECONDS = 3;

/**
 * Measures case `c` in `restarts` sessions: each starts both servers afresh, warms each up, then loads them in
 * turn, `slices / restarts` slices of `sliceSeconds` each, in the order bare maap, maap bare, bare maap...: slice i of
 * one server is next to slice i of the other. A shared machine's slow and quiet phases last seconds; short slices
 * side by side put both servers in the same phase far more often than runs of ten seconds one after the other.
 * Fresh processes per session, so that what a process keeps for its life (how its memory was laid out) is not one
 * draw shared by every pair. Returns each server's slices, its CPU time per request over its measured slices (read
 * from just before its first to a moment after its last, so that work it does after a slice, a log flush or GC, is
 * counted), and the bytes it wrote to stdout per request (its log, read once it has stopped).
 */
async function measureSlices(dir: string, c: Case) {
  const measured: Record<'bare' | 'maap', Slice[]> = { bare: [], maap: [] };
  const cpu = { bare: { ms: 0, requests: 0 }, maap: { ms: 0, requests: 0 } };
  const log = { bare: { bytes: 0, requests: 0 }, maap: { bytes: 0, requests: 0 } };
  const perSession = Math.ceil(slices / restarts);
  for (let session = 0; session < restarts; session++) {
    const started: { kind: 'bare' | 'maap'; child: ChildProcess; url: string; logFile: string }[] = [];
    const requests = { bare: 0, maap: 0 };
    try {
      // The server started second may find memory laid out differently: each session turns the order.
      const order = session % 2 === 0 ? servers(c) : servers(c).reverse();
      for (const server of order) {
        const logFile = join(dir, `${c.label}-${server.kind}-${session}.log`);
        const { child, url } = await startChild(server.args, logFile);
        started.push({ kind: server.kind, child, url: `${url}${server.path}`, logFile });
      }
      for (const s of started)
        requests[s.kind] += (await slice(s.url, c.body, s.child.pid, WARM_UP_SECONDS)).requests;
      const cpuBefore = { bare: 0, maap: 0 };
      for (const s of started) cpuBefore[s.kind] = (await cpuMs(s.child.pid)) ?? Number.NaN;
      const bareFirst = started[0]?.kind === 'bare' ? started : [...started].reverse();
      for (let i = 0; i < perSession; i++) {
        for (const s of i % 2 === 0 ? bareFirst : [...bareFirst].reverse()) {
          const r = await slice(s.url, c.body, s.child.pid, sliceSeconds);
          measured[s.kind].push(r);
          requests[s.kind] += r.requests;
          cpu[s.kind].requests += r.requests;
          if (verbose) {
            console.log(
              `  session ${session + 1} slice ${i + 1} ${c.label} ${s.kind}: ${r.rps.toFixed(0)} req/s, ${((r.cpuMs * 1000) / r.requests).toFixed(1)} µs CPU/req`,
            );
          }
        }
      }
      // What each server does after its last slice (a log flush within 50 ms, GC) counts too.
      await new Promise((settle) => setTimeout(settle, 200));
      for (const s of started)
        cpu[s.kind].ms += ((await cpuMs(s.child.pid)) ?? Number.NaN) - cpuBefore[s.kind];
    } finally {
      for (const s of started) await stopChild(s.child);
    }
    // After the servers exited: their last lines (flushed at shutdown) are in the files.
    for (const s of started) {
      log[s.kind].bytes += (await stat(s.logFile)).size;
      log[s.kind].requests += requests[s.kind];
    }
  }
  const perRequest = (kind: 'bare' | 'maap') => ({
    cpuUs: (cpu[kind].ms * 1000) / cpu[kind].requests,
    logBytes: log[kind].requests > 0 ? log[kind].bytes / log[kind].requests : 0,
  });
  return { ...measured, perSession, bareCost: perRequest('bare'), maapCost: perRequest('maap') };
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
      `autocannon: ${connections} connections; both servers running side by side${pinning ? ` on CPU ${SERVER_CPU}, the load generator on CPU ${LOADER_CPU}` : ' (not pinned)'}, loaded in turn in ${restarts} sessions of fresh processes: ${Math.ceil(slices / restarts)} pairs of ${sliceSeconds}-second slices each (after ${WARM_UP_SECONDS} s of warm-up each), in the order bare maap, maap bare, bare maap...; each slice opens its connections anew\n`,
    );
    console.log(
      `${'model'.padEnd(8)}${'run ms'.padStart(8)}${'server'.padStart(8)}${'req/s'.padStart(9)}${'p50 ms'.padStart(8)}${'p99 ms'.padStart(8)}${'ratio'.padStart(8)}${'CPU µs/req'.padStart(12)}${'log B/req'.padStart(11)}`,
    );
    for (const c of cases) {
      const measured = await measureSlices(dir, c);
      // Slice i of maap against slice i of bare: loaded one right after the other, so that a slow phase of the
      // machine (they last seconds) falls on both; the order turns every pair (bare first, then maap first), so that
      // a machine getting faster or slower favours neither.
      const paired = measured.maap.map((m, i) => m.rps / (measured.bare[i] as Slice).rps);
      const ratioMedian = quantile(paired, 0.5);
      const goal = GOALS[c.label as keyof typeof GOALS];
      // Each session's own median: how far apart fresh pairs of processes land.
      const { perSession } = measured;
      const sessions = Array.from({ length: Math.ceil(paired.length / perSession) }, (_, k) =>
        quantile(paired.slice(k * perSession, (k + 1) * perSession), 0.5),
      );
      verdicts.push(
        `${c.label}: median ${ratioMedian.toFixed(3)}x of ${paired.length} pairs (quartiles ${quantile(paired, 0.25).toFixed(2)}x–${quantile(paired, 0.75).toFixed(2)}x; the ${sessions.length} sessions' medians ${Math.min(...sessions).toFixed(2)}x–${Math.max(...sessions).toFixed(2)}x), goal ≥ ${goal}: ${ratioMedian >= goal ? 'met' : 'NOT met'}`,
      );
      for (const kind of ['bare', 'maap'] as const) {
        const runs = measured[kind];
        const { cpuUs, logBytes } = kind === 'bare' ? measured.bareCost : measured.maapCost;
        const ratio = kind === 'maap' ? `${ratioMedian.toFixed(2)}x` : '1.00x';
        const median = (pick: (r: Slice) => number) => quantile(runs.map(pick), 0.5);
        console.log(
          `${c.label.padEnd(8)}${c.runMs.toFixed(3).padStart(8)}${kind.padStart(8)}${median((r) => r.rps)
            .toFixed(0)
            .padStart(
              9,
            )}${String(median((r) => r.p50)).padStart(8)}${String(median((r) => r.p99)).padStart(8)}${ratio.padStart(8)}${cpuUs.toFixed(1).padStart(12)}${logBytes.toFixed(0).padStart(11)}`,
        );
      }
    }
    console.log(`\nmaap / bare, slice by slice:\n  ${verdicts.join('\n  ')}`);
    console.log(
      '\nratio: maap serve throughput / bare node:http + session.run throughput (goal ≥ 0.85 small, ≥ 0.95 heavy):' +
        '\nthe median, over the pairs of slices, of the ratio of the two slices of a pair (loaded one right after the' +
        '\nother), which need not equal the quotient of the two req/s columns. req/s, p50 and p99: the median of each' +
        "\nserver's slices; CPU µs/req: the server process's CPU time per request from its first measured slice to" +
        '\njust after its last (from /proc); log B/req: stdout bytes per request; run ms: one session.run of the' +
        '\nrequest batch, measured here.',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
