/**
 * `maap serve` and `maap predict`: predict in-process against a package file, and a real `maap serve` child
 * process (model from a folder registry) answering `maap predict <url>`, then exiting 0 on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { inferUrl } from '../../bin/commands/serve.ts';
import { main } from '../../bin/maap.ts';
import { openRegistry } from '../../lib/registry/index.ts';
import { mlpModel, mlpReference } from '../fixtures/models.ts';
import { packFixture, tempDir } from '../helpers/packages.ts';

const REPO = resolve(import.meta.dirname, '../..');
const X = [1, 2, 3, 4];
let dir: string;
let cleanup: () => Promise<void>;
let pkgPath: string;
let requestFile: string;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('maap-cli-'));
  const example = {
    request: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [X] }] },
    outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: [mlpReference(X)] }],
  };
  pkgPath = (await packFixture(dir, mlpModel(), { name: 'fraud', version: '1.2.0', example })).path;
  requestFile = join(dir, 'request.json');
  await writeFile(requestFile, JSON.stringify({ id: 'cli-1', inputs: example.request.inputs }));
  await writeFile(join(dir, 'example.json'), JSON.stringify(example));
  await writeFile(
    join(dir, 'bad.json'),
    JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] }),
  );
});
afterAll(() => cleanup());

/** Runs the CLI in-process; returns the exit code, what went to stdout (console.log) and to stderr. */
async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err.push(String(chunk));
    return true;
  });
  try {
    const code = await main(args);
    return { code, stdout: out.join('\n'), stderr: err.join('') };
  } finally {
    log.mockRestore();
    write.mockRestore();
  }
}

function expectPrediction(stdout: string, id?: string) {
  const response = JSON.parse(stdout);
  expect(response).toMatchObject({ model_name: 'fraud', model_version: '1.2.0', ...(id ? { id } : {}) });
  for (const [i, v] of mlpReference(X).entries()) expect(response.outputs[0].data[i]).toBeCloseTo(v, 5);
}

describe('maap predict <pkg-file>', () => {
  it('loads the package in-process and prints the response', async () => {
    const result = await run('predict', pkgPath, '--input', requestFile);
    expect(result.code).toBe(0);
    expectPrediction(result.stdout, 'cli-1');
  });

  it('accepts an example file (the request under "request")', async () => {
    const result = await run('predict', pkgPath, '--input', join(dir, 'example.json'), '--model', 'fraud');
    expect(result.code).toBe(0);
    expectPrediction(result.stdout);
  });

  it('fails with the validation message on a bad request, and on a model name mismatch', async () => {
    const bad = await run('predict', pkgPath, '--input', join(dir, 'bad.json'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/maap: input "x": shape \[1,3\]: dimension 1 is 3 but the model expects 4/);
    const other = await run('predict', pkgPath, '--input', requestFile, '--model', 'other');
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('holds model fraud, not other');
  });
});

describe('inferUrl', () => {
  it('derives the infer endpoint from a base URL, a model URL or an infer URL', () => {
    expect(inferUrl('http://h:1', 'fraud')).toBe('http://h:1/v2/models/fraud/infer');
    expect(inferUrl('http://h:1/', 'fraud', '1.2.0')).toBe('http://h:1/v2/models/fraud/versions/1.2.0/infer');
    expect(inferUrl('http://h:1/v2/models/fraud')).toBe('http://h:1/v2/models/fraud/infer');
    expect(inferUrl('http://h:1/v2/models/fraud/versions/1.2.0/')).toBe(
      'http://h:1/v2/models/fraud/versions/1.2.0/infer',
    );
    expect(inferUrl('http://h:1/v2/models/fraud/infer')).toBe('http://h:1/v2/models/fraud/infer');
    expect(() => inferUrl('http://h:1')).toThrow(/name the model: --model <name>/);
  });
});

describe('maap serve (a child process) and maap predict <url>', () => {
  let child: ChildProcess;
  let url: string;

  beforeAll(async () => {
    const registry = openRegistry(join(dir, 'registry'));
    await registry.push(pkgPath);
    child = spawn(
      process.execPath,
      [
        'bin/maap.js',
        'serve',
        'fraud@^1',
        '--registry',
        join(dir, 'registry'),
        '--port',
        '0',
        '--threads',
        '1',
      ],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MAAP_REGISTRY: '' } },
    );
    url = await new Promise<string>((ok, fail) => {
      let out = '';
      let err = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /serving fraud@1\.2\.0 at (http:\/\/\S+)\/v2\/models\/fraud\n/.exec(out);
        if (m?.[1]) ok(m[1]);
      });
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) => fail(new Error(`maap serve exited ${code}: ${err}`)));
    });
  });
  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  it('answers predict with the model URL, and with a base URL and --model', async () => {
    const byUrl = await run('predict', `${url}/v2/models/fraud`, '--input', requestFile);
    expect(byUrl.code).toBe(0);
    expectPrediction(byUrl.stdout, 'cli-1');
    const byName = await run(
      'predict',
      url,
      '--model',
      'fraud',
      '--model-version',
      '1.2.0',
      '--input',
      requestFile,
    );
    expect(byName.code).toBe(0);
    expectPrediction(byName.stdout, 'cli-1');
  });

  it("exits non-zero with the server's error message on a 4xx", async () => {
    const bad = await run('predict', url, '--model', 'fraud', '--input', join(dir, 'bad.json'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      `${url}/v2/models/fraud/infer answered 400: input "x": shape [1,3]: dimension 1 is 3`,
    );
    const unknown = await run('predict', url, '--model', 'nope', '--input', requestFile);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('answered 404: unknown model "nope"');
  });

  it('gets predict the 413 for a body over the limit, not a reset while it is still sending (EPIPE)', async () => {
    const big = join(dir, 'big.json');
    const request = JSON.parse(await readFile(requestFile, 'utf8')) as Record<string, unknown>;
    await writeFile(big, JSON.stringify({ ...request, id: 'x'.repeat(7 * 1024 * 1024) }));
    for (let i = 0; i < 3; i++) {
      const over = await run('predict', url, '--model', 'fraud', '--input', big);
      expect(over.stderr).toContain(
        'answered 413: the request body is larger than the limit of 6291456 bytes',
      );
      expect(over.code).toBe(1);
    }
  });

  it('shuts down and exits 0 on SIGTERM', async () => {
    const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const after = await run('predict', url, '--model', 'fraud', '--input', requestFile);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/cannot reach .*ECONNREFUSED/);
  });
});
