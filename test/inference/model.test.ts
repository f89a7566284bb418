import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceRequestError, SignatureError } from '../../lib/errors.ts';
import {
  checkRuntimeRequirements,
  type LoadedModel,
  loadModel,
  RUNTIME_VERSION,
  sessionOptions,
} from '../../lib/inference/model.ts';
import {
  ModelUnavailableError,
  RuntimeRequirementError,
  SmokeTestError,
  UnsupportedModelError,
} from '../../lib/inference/model-errors.ts';
import { compareOutputs, warmUpRequest } from '../../lib/inference/smoke.ts';
import { validateRequest } from '../../lib/inference/validate.ts';
import { encodeModel } from '../../lib/onnx/builder.ts';
import { generateKeyFiles } from '../../lib/package/sign.ts';
import { openRegistry } from '../../lib/registry/index.ts';
import { identityModel, mlpModel, mlpReference, multiIoModel, PRODUCER } from '../fixtures/models.ts';
import { packFixture, tempDir } from '../helpers/packages.ts';

let dir: string;
let cleanup: () => Promise<void>;
const open: LoadedModel[] = [];
beforeAll(async () => ({ dir, cleanup } = await tempDir('maap-model-')));
afterAll(async () => {
  await Promise.all(open.map((m) => m.close()));
  await cleanup();
});

const X = [1, 2, 3, 4];
const example = (y = mlpReference(X)) => ({
  request: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [X] }] },
  outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: [y] }],
  tolerance: { absolute: 1e-5, relative: 1e-4 },
});

async function load(...args: Parameters<typeof loadModel>): Promise<LoadedModel> {
  const model = await loadModel(...args);
  open.push(model);
  return model;
}

async function predict(model: LoadedModel, x: number[]): Promise<unknown[]> {
  const request = validateRequest(
    { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: x }] },
    model.signature,
  );
  const [y] = await model.run(request);
  return y?.data ?? [];
}

describe('loadModel', () => {
  it('loads a package file: verified, smoke-tested, warm, and runs', async () => {
    const pkg = await packFixture(dir, mlpModel(), { name: 'fraud', version: '1.2.0', example: example() });
    const model = await load(pkg.path, { intraOpThreads: 1 });
    expect(model.name).toBe('fraud');
    expect(model.version).toBe('1.2.0');
    expect(model.id).toBe(pkg.id);
    expect(model.signed).toBe(false);
    expect(model.stats).toMatchObject({ origin: pkg.path, smokeTest: 'passed', warmUp: 'ok' });
    const y = await predict(model, [1, 2, 3, 4]);
    for (const [i, v] of mlpReference(X).entries()) expect(y[i]).toBeCloseTo(v, 5);
  });

  it('loads package bytes, warming up with a synthetic request when there is no example', async () => {
    const pkg = await packFixture(dir, multiIoModel(), { name: 'multi', version: '1.0.0' });
    const model = await load(await readFile(pkg.path));
    expect(model.stats).toMatchObject({ origin: 'package bytes', smokeTest: 'none', warmUp: 'ok' });
    expect(model.signature.inputs.map((i) => i.name)).toEqual(['features', 'ids']);
  });

  it('loads from a folder registry by range, exact version, alias and ModelRef', async () => {
    const registry = openRegistry(join(dir, 'registry'));
    for (const version of ['1.0.0', '1.1.0', '2.0.0']) {
      const pkg = await packFixture(dir, mlpModel(), { name: 'fraud', version, example: example() });
      await registry.push(pkg.path);
    }
    await registry.setAlias('fraud', 'production', '1.0.0');
    const byRange = await load({ registry, ref: 'fraud@^1' });
    expect(byRange.version).toBe('1.1.0');
    expect(byRange.stats.origin).toBe(`fraud@1.1.0 from ${registry.uri}`);
    const byAlias = await load({ registry: join(dir, 'registry'), ref: 'fraud@production' });
    expect(byAlias.version).toBe('1.0.0');
    expect(byAlias.stats.origin).toContain('(alias production)');
    const latest = await load({ registry, ref: { name: 'fraud' } });
    expect(latest.version).toBe('2.0.0');
    await expect(loadModel({ registry, ref: 'fraud@^3' })).rejects.toThrow(
      /no version of fraud satisfies "\^3"/,
    );
  });

  it('enforces trusted keys: signed by a trusted key loads, anything else is refused', async () => {
    const trusted = await generateKeyFiles(join(dir, 'trusted'));
    const other = await generateKeyFiles(join(dir, 'other'));
    const signed = await packFixture(dir, mlpModel(), { name: 'signed', signKey: trusted.privatePath });
    const unsigned = await packFixture(dir, mlpModel(), { name: 'unsigned' });
    const model = await load(signed.path, { trustedKeys: [trusted.publicPath] });
    expect(model.signed).toBe(true);
    await expect(loadModel(signed.path, { trustedKeys: [other.publicPath] })).rejects.toThrow(SignatureError);
    await expect(loadModel(unsigned.path, { trustedKeys: [trusted.publicPath] })).rejects.toThrow(
      /is not signed, and trusted keys were given/,
    );
  });

  it('refuses a package whose requires.onnxruntime this runtime cannot satisfy', async () => {
    const pkg = await packFixture(dir, mlpModel(), { name: 'future', requiresOnnxruntime: '>=99.0.0' });
    const refusal = loadModel(pkg.path);
    await expect(refusal).rejects.toThrow(RuntimeRequirementError);
    await expect(refusal).rejects.toThrow(
      `future@1.0.0 requires onnxruntime >=99.0.0, but this predictor runs onnxruntime-node ${RUNTIME_VERSION}`,
    );
    const old = await packFixture(dir, mlpModel(), { name: 'old', requiresOnnxruntime: '>=1.10 <1.11' });
    await expect(loadModel(old.path)).rejects.toThrow(RuntimeRequirementError);
    const manifest = { ...old.manifest, requires: { ...old.manifest.requires, onnxruntime: '^1.20' } };
    await expect(checkRuntimeRequirements(manifest, '1.30.0')).resolves.toBeUndefined();
    await expect(checkRuntimeRequirements(manifest, '2.0.0')).rejects.toThrow(RuntimeRequirementError);
    // The range maap pack writes is answered without semver; the same answers.
    const plain = { ...manifest, requires: { ...manifest.requires, onnxruntime: '>=1.20.0' } };
    await expect(checkRuntimeRequirements(plain, '1.30.0')).resolves.toBeUndefined();
    await expect(checkRuntimeRequirements(plain, '1.19.2')).rejects.toThrow(
      /requires onnxruntime >=1.20.0, but this predictor runs onnxruntime-node 1.19.2/,
    );
  });

  it('refuses a BF16 model by name before onnxruntime fails on it', async () => {
    const pkg = await packFixture(dir, identityModel('BF16'), { name: 'brain' });
    await expect(loadModel(pkg.path)).rejects.toThrow(UnsupportedModelError);
    await expect(loadModel(pkg.path)).rejects.toThrow(
      /uses BF16 \("x", "y"\), which onnxruntime-node cannot run/,
    );
  });

  it('refuses a model that fails its smoke test, naming the output and the values', async () => {
    const wrong = mlpReference(X).map((v, i) => (i === 1 ? v + 0.5 : v));
    const pkg = await packFixture(dir, mlpModel(), { name: 'broken', example: example(wrong) });
    const refusal = loadModel(pkg.path);
    await expect(refusal).rejects.toThrow(SmokeTestError);
    await expect(refusal).rejects.toThrow(
      /broken@1\.0\.0 failed its smoke test .*output "y"\[1\] is 4\.1\d*, expected 4\.6/,
    );
    // within tolerance passes: 1e-5 + 1e-4·4.1 ≈ 4.2e-4
    const close = mlpReference(X).map((v, i) => (i === 1 ? v + 3e-4 : v));
    const ok = await packFixture(dir, mlpModel(), { name: 'close', example: example(close) });
    expect((await load(ok.path)).stats.smokeTest).toBe('passed');
  });

  it('close waits for in-flight runs, then refuses new ones', async () => {
    const pkg = await packFixture(dir, mlpModel(), { name: 'closing' });
    const model = await loadModel(pkg.path);
    const running = predict(model, X);
    const closed = model.close();
    await expect(running).resolves.toHaveLength(2);
    await closed;
    await expect(predict(model, X)).rejects.toThrow(ModelUnavailableError);
    await model.close(); // idempotent
  });

  it('answers a kernel failure caused by the inputs as a request error (400), not a fault', async () => {
    // y = a + b with a and b both [batch, 3]: a batch mismatch passes the signature check but fails in Add.
    const bytes = encodeModel({
      producer: PRODUCER,
      graph: {
        name: 'add',
        inputs: [
          { name: 'a', elemType: 'FLOAT', shape: ['batch', 3] },
          { name: 'b', elemType: 'FLOAT', shape: ['batch', 3] },
        ],
        outputs: [{ name: 'y', elemType: 'FLOAT', shape: ['batch', 3] }],
        nodes: [{ opType: 'Add', inputs: ['a', 'b'], outputs: ['y'], name: 'add' }],
      },
    });
    const pkg = await packFixture(dir, { bytes, expected: { inputs: [], outputs: [] } }, { name: 'add' });
    const model = await load(pkg.path);
    const tensor = (name: string, rows: number) => ({
      name,
      datatype: 'FP32',
      shape: [rows, 3],
      data: new Array(rows * 3).fill(1),
    });
    const request = validateRequest({ inputs: [tensor('a', 2), tensor('b', 3)] }, model.signature);
    const refusal = model.run(request);
    await expect(refusal).rejects.toThrow(InferenceRequestError);
    await expect(refusal).rejects.toThrow(
      /^the model cannot run on these inputs: Non-zero status code returned while running Add node/,
    );
    await expect(refusal).rejects.not.toThrow(/onnxruntime_src/);
  });
});

describe('session options', () => {
  it('optimise fully, run sequentially without spinning, with the threads asked for', () => {
    expect(sessionOptions({ intraOpThreads: 3 })).toMatchObject({
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: 3,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    expect(
      sessionOptions({ sessionOptions: { graphOptimizationLevel: 'basic' } }).graphOptimizationLevel,
    ).toBe('basic');
  });
});

describe('compareOutputs', () => {
  const tol = { absolute: 0.01, relative: 0.1 };
  const tensor = (data: (number | string | boolean)[], datatype = 'FP32' as const) => ({
    name: 'y',
    datatype,
    shape: [data.length],
    data,
  });

  it('accepts |a - b| <= absolute + relative·|expected| and nothing more', () => {
    expect(compareOutputs([tensor([10.99, -1.1])], [tensor([10, -1])], tol)).toEqual([]);
    expect(compareOutputs([tensor([11.02])], [tensor([10])], tol)).toEqual([
      'output "y"[0] is 11.02, expected 10',
    ]);
  });

  it('matches NaN with NaN and infinities only with themselves', () => {
    expect(compareOutputs([tensor(['NaN', 'Infinity'])], [tensor(['NaN', 'Infinity'])], tol)).toEqual([]);
    expect(compareOutputs([tensor([1e308])], [tensor(['Infinity'])], tol)).toHaveLength(1);
    expect(compareOutputs([tensor([0])], [tensor(['NaN'])], tol)).toHaveLength(1);
  });

  it('compares shape, datatype, nested expected data, BOOL and BYTES exactly', () => {
    const got = { name: 'y', datatype: 'BOOL' as const, shape: [2, 1], data: [true, false] };
    expect(compareOutputs([got], [{ ...got, data: [[true], [false]] }], tol)).toEqual([]);
    expect(compareOutputs([got], [{ ...got, data: [[true], [true]] }], tol)).toHaveLength(1);
    expect(compareOutputs([got], [{ ...got, shape: [1, 2] }], tol)).toEqual([
      'output "y" has shape [2,1], expected [1,2]',
    ]);
    expect(compareOutputs([got], [{ ...got, datatype: 'INT8' }], tol)).toEqual([
      'output "y" is BOOL, expected INT8',
    ]);
    expect(compareOutputs([], [got], tol)).toEqual(['output "y" is missing']);
  });

  it('reports a few mismatches and counts the rest', () => {
    const problems = compareOutputs([tensor([1, 1, 1, 1, 1, 1])], [tensor([0, 0, 0, 0, 0, 0])], tol);
    expect(problems).toHaveLength(4);
    expect(problems[3]).toBe('output "y": 3 more elements differ');
  });
});

describe('warmUpRequest', () => {
  it('makes a valid request of ones for dynamic dimensions and zeros, false or "" for data', () => {
    const signature = identityModel('BYTES', ['n', 2]).expected;
    expect(warmUpRequest(signature)).toEqual({
      inputs: [{ name: 'x', datatype: 'BYTES', shape: [1, 2], data: ['', ''] }],
    });
    expect(() =>
      validateRequest(warmUpRequest(multiIoModel().expected), multiIoModel().expected),
    ).not.toThrow();
  });
});
