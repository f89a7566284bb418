/**
 * Package benchmark: pack, verify, push and pull of a generated model of at least 500 MB on both registry
 * backends (a folder, and S3 through s3rver on 127.0.0.1), each step in a fresh process, next to `cp` and
 * `sha256sum` of the same bytes measured in the same run. Prints MB/s, the ratio to sha256sum's throughput,
 * and each step's peak RSS.
 *
 *   npm run bench:package [-- --mb 600]
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { writeBigGatherModel } from '../test/fixtures/models.ts';
import { start as startS3 } from '../test/helpers/s3rver.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const mbArg = process.argv.indexOf('--mb');
const targetMb = mbArg > 0 ? Number(process.argv[mbArg + 1]) : 600;

interface Row {
  step: string;
  seconds: number;
  bytes: number;
  maxRssMb?: number;
}

/** Times an external command; peak RSS through GNU time when it is installed. */
async function timeCommand(step: string, cmd: string, args: string[], bytes: number): Promise<Row> {
  const gnuTime = await stat('/usr/bin/time').then(
    () => true,
    () => false,
  );
  const t0 = performance.now();
  if (gnuTime) {
    const { stderr } = await run('/usr/bin/time', ['-f', 'maxrss=%M', cmd, ...args], { maxBuffer: 1 << 20 });
    const kb = Number(/maxrss=(\d+)/.exec(stderr)?.[1]);
    return { step, seconds: (performance.now() - t0) / 1000, bytes, maxRssMb: kb / 1024 };
  }
  await run(cmd, args, { maxBuffer: 1 << 20 });
  return { step, seconds: (performance.now() - t0) / 1000, bytes };
}

/**
 * The steps run as users run an installed maap: compiled JavaScript on plain `node` (bundled here with esbuild,
 * dependencies left in node_modules), not through the tsx loader, which alone adds ~45 MB of RSS.
 */
async function compileStep(): Promise<string> {
  const { build } = await import('esbuild');
  const outfile = join(root, 'bench/out/package-step.mjs');
  await build({
    entryPoints: [join(root, 'bench/package-step.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  });
  return outfile;
}

let stepScript: string | undefined;

async function maapStep(
  label: string,
  bytes: number,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<Row> {
  stepScript ??= await compileStep();
  const { stdout } = await run(process.execPath, [stepScript, ...args], {
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    maxBuffer: 1 << 20,
  });
  const result = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { ms: number; maxRssMb: number };
  return { step: label, seconds: result.ms / 1000, bytes, maxRssMb: result.maxRssMb };
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'maap-bench-'));
  const s3 = await startS3();
  try {
    const model = join(dir, 'big.onnx');
    const written = await writeBigGatherModel(model, targetMb * 1e6);
    console.log(
      `model: ${(written.bytes / 1e6).toFixed(0)} MB (Gather over a FP32 [${written.rows}, ${written.cols}] table), in ${dir}`,
    );
    const pkg = join(dir, 'big-1.0.0.maap');
    const s3Env = {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      MAAP_S3_ENDPOINT: s3.endpoint,
    };
    const folder = join(dir, 'registry');
    const bucket = `s3://${s3.bucket}/models`;
    const rows: Row[] = [];
    rows.push(await maapStep('node idle', 0, ['idle']));
    rows.push(await timeCommand('cp (baseline)', 'cp', [model, join(dir, 'copy.onnx')], written.bytes));
    await rm(join(dir, 'copy.onnx'));
    rows.push(await maapStep('maap pack', written.bytes, ['pack', model, pkg, '1.0.0']));
    const size = (await stat(pkg)).size;
    rows.push(await timeCommand('sha256sum (baseline)', 'sha256sum', [pkg], size));
    rows.push(await maapStep('maap verify', size, ['verify', pkg]));
    rows.push(await maapStep('maap push (folder)', size, ['push', pkg, folder]));
    rows.push(
      await maapStep('maap pull (folder)', size, ['pull', join(dir, 'pulled-folder.maap'), folder, '1.0.0']),
    );
    rows.push(await maapStep('maap push (s3rver)', size, ['push', pkg, bucket], s3Env));
    rows.push(
      await maapStep(
        'maap pull (s3rver)',
        size,
        ['pull', join(dir, 'pulled-s3.maap'), bucket, '1.0.0'],
        s3Env,
      ),
    );

    const sha = rows.find((r) => r.step.startsWith('sha256sum')) as Row;
    const shaRate = sha.bytes / sha.seconds;
    console.log(
      `\n${'step'.padEnd(22)}${'seconds'.padStart(9)}${'MB/s'.padStart(9)}${'vs sha256sum'.padStart(14)}${'peak RSS MB'.padStart(13)}`,
    );
    for (const r of rows) {
      const rate = r.bytes ? r.bytes / r.seconds : 0;
      console.log(
        `${r.step.padEnd(22)}${r.seconds.toFixed(2).padStart(9)}${(rate ? (rate / 1e6).toFixed(0) : '-').padStart(9)}` +
          `${(rate ? `${(shaRate / rate).toFixed(2)}x time` : '-').padStart(14)}${(r.maxRssMb?.toFixed(0) ?? '?').padStart(13)}`,
      );
    }
    console.log(
      '\n"vs sha256sum": time of the step divided by sha256sum\'s time for the same bytes (goal: pack and verify ≤ 1.5x).',
    );
    console.log(
      'Peak RSS includes the Node baseline shown as "node idle" (goal: under 200 MB whatever the size).',
    );
  } finally {
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
