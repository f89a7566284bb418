import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { externalDataModel, mlpModel, mlpReference } from '../fixtures/models.ts';
import { tempDir } from '../helpers/packages.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsx = join(root, 'node_modules/.bin/tsx');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI in a child process, as a user would. */
function maap(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      tsx,
      [join(root, 'bin/maap.ts'), ...args],
      { cwd, env: { ...process.env, ...env, MAAP_REGISTRY: join(cwd, 'registry') } },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('maap-cli-'));
  await writeFile(join(dir, 'model.onnx'), mlpModel().bytes);
  await writeFile(join(dir, 'ext.onnx'), externalDataModel().bytes);
  const example = {
    request: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] },
    outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: mlpReference([1, 2, 3, 4]) }],
  };
  await writeFile(join(dir, 'example.json'), JSON.stringify(example));
  await writeFile(join(dir, 'metrics.json'), JSON.stringify({ accuracy: 0.91 }));
});
afterAll(() => cleanup());

describe('maap CLI, end to end in child processes', () => {
  it('keygen → pack --sign-key → verify --trusted-key → push → ls → alias → pull, with --json results', async () => {
    expect((await maap(['keygen', '--out', 'k'], dir)).code).toBe(0);
    const pack = await maap(
      [
        'pack',
        'model.onnx',
        '--name',
        'fraud',
        '--version',
        '1.2.0',
        '--example',
        'example.json',
        '--metrics',
        'metrics.json',
        '--sign-key',
        'k.key',
        '--json',
      ],
      dir,
    );
    expect(pack).toMatchObject({ code: 0, stderr: '' });
    const packed = JSON.parse(pack.stdout);
    expect(packed).toMatchObject({
      signed: true,
      path: join(dir, 'fraud-1.2.0.maap'),
      manifest: { name: 'fraud', version: '1.2.0' },
    });

    const verify = await maap(['verify', 'fraud-1.2.0.maap', '--trusted-key', 'k.pub'], dir);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^ok fraud@1\.2\.0 .*signed by [0-9a-f]{16}/);

    expect((await maap(['push', 'fraud-1.2.0.maap', '--trusted-key', 'k.pub'], dir)).code).toBe(0);
    const ls = JSON.parse((await maap(['ls', 'fraud', '--json'], dir)).stdout);
    expect(JSON.stringify(ls)).toContain('"accuracy":0.91');
    expect((await maap(['alias', 'set', 'fraud', 'production', '1.2.0'], dir)).code).toBe(0);
    const pull = await maap(
      ['pull', 'fraud@production', '--out', 'pulled.maap', '--trusted-key', 'k.pub', '--json'],
      dir,
    );
    expect(pull.code).toBe(0);
    expect(await readFile(join(dir, 'pulled.maap'))).toEqual(await readFile(join(dir, 'fraud-1.2.0.maap')));
  });

  it('inspect shows the signature read from the graph', async () => {
    await maap(['pack', 'model.onnx', '--name', 'shown', '--version', '0.1.0'], dir);
    const inspect = await maap(['inspect', 'shown-0.1.0.maap'], dir);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toMatch(/x {2}FP32\[\?, 4\]/);
    expect(inspect.stdout).toMatch(/y {2}FP32\[\?, 2\]/);
  });

  it('a refused package exits 1 with one line naming the problem and no stack trace', async () => {
    const bytes = await readFile(join(dir, 'shown-0.1.0.maap'));
    await writeFile(join(dir, 'cut.maap'), bytes.subarray(0, 1500));
    const run = await maap(['verify', 'cut.maap'], dir);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^maap: cut.maap is not a valid maap package: truncated/);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('a model with external data is refused at pack time, and no package appears', async () => {
    const run = await maap(['pack', 'ext.onnx', '--name', 'ext', '--version', '1.0.0'], dir);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/stores its data in an external file/);
    await expect(stat(join(dir, 'ext-1.0.0.maap'))).rejects.toThrow(/ENOENT/);
  });

  it('usage errors exit 2: a bad version, a missing required flag', async () => {
    const bad = await maap(['pack', 'model.onnx', '--name', 'x', '--version', 'one'], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a semantic version/);
    const missing = await maap(['pack', 'model.onnx', '--version', '1.0.0'], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--name/);
  });

  it('keygen refuses to overwrite an existing key', async () => {
    const run = await maap(['keygen', '--out', 'k'], dir);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/k.key: it already exists/);
  });

  it('pushing the same version twice is refused and leaves the first intact', async () => {
    const run = await maap(['push', 'fraud-1.2.0.maap'], dir);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/already exists/);
    expect(await readFile(join(dir, 'registry/fraud/1.2.0.maap'))).toEqual(
      await readFile(join(dir, 'fraud-1.2.0.maap')),
    );
  });
});
