import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OnnxModelError, UsageError } from '../../lib/errors.ts';
import { generateKeyFiles } from '../../lib/package/sign.ts';
import { signPackage } from '../../lib/package/sign-package.ts';
import { readManifestFromHead } from '../../lib/package/tar-head.ts';
import { verifyPackage } from '../../lib/package/verify.ts';
import {
  externalDataModel,
  identityModel,
  mlpModel,
  mlpReference,
  multiIoModel,
} from '../fixtures/models.ts';
import { packFixture, readEntries, tempDir } from '../helpers/packages.ts';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(() => cleanup());

const example = {
  request: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [[1, 2, 3, 4]] }] },
  outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: mlpReference([1, 2, 3, 4]) }],
};

describe('packModel', () => {
  it('writes maap.json first, then model.onnx, the files, and maap.sig last', async () => {
    const keys = await generateKeyFiles(join(dir, 'k'));
    await writeFile(join(dir, 'vocab.txt'), 'a\nb\n');
    const result = await packFixture(dir, mlpModel(), {
      name: 'fraud',
      version: '1.4.0',
      files: [join(dir, 'vocab.txt')],
      signKey: keys.privatePath,
    });
    const entries = await readEntries(result.path);
    expect(entries.map((e) => e.header.name)).toEqual(['maap.json', 'model.onnx', 'vocab.txt', 'maap.sig']);
    expect(entries[1]?.data.equals(mlpModel().bytes)).toBe(true);
    expect(result.path).toBe(join(dir, 'fraud-1.4.0.maap'));
  });

  it('records the signature, opset, files, metrics, labels, example and lineage in the manifest', async () => {
    await writeFile(join(dir, 'metrics.json'), JSON.stringify({ accuracy: 0.97, auc: 0.99 }));
    await writeFile(join(dir, 'params.json'), JSON.stringify({ epochs: 3 }));
    await writeFile(join(dir, 'example.json'), JSON.stringify(example));
    const { manifest } = await packFixture(dir, mlpModel(), {
      name: 'fraud',
      version: '2.0.0',
      metrics: join(dir, 'metrics.json'),
      params: join(dir, 'params.json'),
      example: join(dir, 'example.json'),
      labels: ['legit', 'fraud'],
      lineage: { gitCommit: 'abc123' },
    });
    expect(manifest.signature).toEqual(mlpModel().expected);
    expect(manifest.model).toMatchObject({
      path: 'model.onnx',
      opset: 17,
      irVersion: 8,
      bytes: mlpModel().bytes.length,
    });
    expect(manifest.requires).toEqual({ onnxruntime: '>=1.12.0', opset: 17 });
    expect(manifest.metrics).toEqual({ accuracy: 0.97, auc: 0.99 });
    expect(manifest.lineage).toEqual({ gitCommit: 'abc123', params: { epochs: 3 } });
    expect(manifest.labels).toEqual(['legit', 'fraud']);
    expect(manifest.example?.tolerance).toEqual({ absolute: 1e-5, relative: 1e-4 });
  });

  it('round trip: verify, extract, and onnxruntime computes the same outputs from the unpacked model', async () => {
    const packed = await packFixture(dir, mlpModel());
    const out = join(dir, 'unpacked');
    const verified = await verifyPackage(packed.path, { extractTo: out });
    expect(verified.id).toBe(packed.id);
    expect((await readdir(out)).sort()).toEqual(['maap.json', 'model.onnx']);
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'));
    const x = new Float32Array([0.5, -1, 2, 3, 1, 1, 1, 1]);
    const { y } = await session.run({ x: new ort.Tensor('float32', x, [2, 4]) });
    const expected = [...mlpReference(x.subarray(0, 4)), ...mlpReference(x.subarray(4))];
    const got = Array.from(y?.data as Float32Array);
    expect(got).toHaveLength(expected.length);
    for (const [i, v] of expected.entries()) expect(got[i]).toBeCloseTo(v, 5);
  });

  it('keeps verified entries in memory on request, and onnxruntime loads the model from those bytes', async () => {
    await writeFile(join(dir, 'vocab.txt'), 'a\nb\n');
    const packed = await packFixture(dir, mlpModel(), { files: [join(dir, 'vocab.txt')] });
    const verified = await verifyPackage(packed.path, { keepInMemory: true });
    expect(verified.entries?.get('vocab.txt')?.toString()).toBe('a\nb\n');
    const session = await ort.InferenceSession.create(verified.entries?.get('model.onnx') as Buffer);
    expect(session.inputNames).toEqual(['x']);
  });

  it('round trip of a multi-input, multi-output model keeps its bytes', async () => {
    const packed = await packFixture(dir, multiIoModel());
    const out = join(dir, 'unpacked');
    await verifyPackage(packed.path, { extractTo: out });
    expect((await readFile(join(out, 'model.onnx'))).equals(multiIoModel().bytes)).toBe(true);
  });

  it('the manifest can be read from the first bytes alone (one ranged read)', async () => {
    const packed = await packFixture(dir, identityModel('INT64'));
    const bytes = await readFile(packed.path);
    expect(readManifestFromHead(bytes.subarray(0, 100))).toEqual({ needed: 512 });
    const head = readManifestFromHead(bytes.subarray(0, 4096));
    expect('manifest' in head && head.manifest).toEqual(packed.manifest);
  });

  it('is reproducible: the same inputs and time give the same bytes', async () => {
    const createdAt = new Date('2026-01-01T00:00:00Z');
    const a = await packFixture(dir, mlpModel(), { out: join(dir, 'a.maap'), createdAt });
    const b = await packFixture(dir, mlpModel(), { out: join(dir, 'b.maap'), createdAt });
    expect((await readFile(a.path)).equals(await readFile(b.path))).toBe(true);
  });

  it('signs at pack time and with signPackage later; verify names the signer', async () => {
    const keys = await generateKeyFiles(join(dir, 'k'));
    expect((await stat(keys.privatePath)).mode & 0o777).toBe(0o600);
    const packed = await packFixture(dir, mlpModel());
    expect((await verifyPackage(packed.path)).signed).toBe(false);
    const unsigned = await readFile(packed.path);
    const { signedBy } = await signPackage(packed.path, keys.privatePath);
    // Every byte before the end-of-archive marker is kept; the signature entry follows them.
    const signed = await readFile(packed.path);
    expect(
      signed.subarray(0, unsigned.length - 1024).equals(unsigned.subarray(0, unsigned.length - 1024)),
    ).toBe(true);
    const verified = await verifyPackage(packed.path, { trustedKeys: [keys.publicPath] });
    expect(verified).toMatchObject({ signed: true, signedBy: keys.fingerprint, id: packed.id });
    expect(signedBy).toBe(keys.fingerprint);
    // Re-signing with another key replaces the signature rather than adding a second one.
    const other = await generateKeyFiles(join(dir, 'other'));
    await signPackage(packed.path, other.privatePath);
    const names = (await readEntries(packed.path)).map((e) => e.header.name);
    expect(names.filter((n) => n === 'maap.sig')).toHaveLength(1);
    expect((await verifyPackage(packed.path, { trustedKeys: [other.publicPath] })).signedBy).toBe(
      other.fingerprint,
    );
  });
});

describe('packModel refuses, leaving nothing behind', () => {
  async function expectNothingWritten() {
    const files = await readdir(dir);
    expect(files.filter((f) => f.endsWith('.maap') || f.endsWith('.tmp'))).toEqual([]);
  }

  it('an output folder that does not exist, saying so', async () => {
    await expect(packFixture(dir, mlpModel(), { out: join(dir, 'nope', 'x.maap') })).rejects.toThrow(
      /cannot write .*x.maap: the folder .*nope does not exist/,
    );
    await expectNothingWritten();
  });

  it('a bad name', async () => {
    await expect(packFixture(dir, mlpModel(), { name: 'Fraud_Model' })).rejects.toThrow(UsageError);
    await expectNothingWritten();
  });

  it('a version that is not semver', async () => {
    await expect(packFixture(dir, mlpModel(), { version: '1.0' })).rejects.toThrow(/not a semantic version/);
    await expectNothingWritten();
  });

  it('a model with external data', async () => {
    await expect(packFixture(dir, externalDataModel())).rejects.toThrow(OnnxModelError);
    await expectNothingWritten();
  });

  it('an example naming an input the model does not have', async () => {
    const bad = { ...example, request: { inputs: [{ ...example.request.inputs[0], name: 'z' }] } };
    await expect(packFixture(dir, mlpModel(), { example: bad })).rejects.toThrow(/input "z" is not an input/);
    await expectNothingWritten();
  });

  it('an example whose data does not fill its shape', async () => {
    const bad = { ...example, request: { inputs: [{ ...example.request.inputs[0], data: [1, 2, 3] }] } };
    await expect(packFixture(dir, mlpModel(), { example: bad })).rejects.toThrow(
      /holds 4 values but data has 3/,
    );
    await expectNothingWritten();
  });

  it('metrics that are not numbers', async () => {
    await expect(packFixture(dir, mlpModel(), { metrics: { accuracy: 'high' } as never })).rejects.toThrow(
      /metrics.accuracy/,
    );
    await expectNothingWritten();
  });

  it('a metrics file that is not JSON', async () => {
    await writeFile(join(dir, 'metrics.json'), '{accuracy: 0.9');
    await expect(packFixture(dir, mlpModel(), { metrics: join(dir, 'metrics.json') })).rejects.toThrow(
      /not valid JSON/,
    );
    await expectNothingWritten();
  });

  it('an extra file with a reserved name', async () => {
    await writeFile(join(dir, 'maap.json'), '{}');
    await expect(packFixture(dir, mlpModel(), { files: [join(dir, 'maap.json')] })).rejects.toThrow(
      /reserved/,
    );
    await expectNothingWritten();
  });

  it('a signing key that is not Ed25519', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string;
    await expect(packFixture(dir, mlpModel(), { signKey: rsa })).rejects.toThrow(/Ed25519/);
    await expectNothingWritten();
  });
});
