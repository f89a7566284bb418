/**
 * End to end over loopback HTTP: what the predictor answers equals what onnxruntime computes when called
 * directly on the same inputs (tensors built here, independently of the codec), for every datatype
 * onnxruntime-node can carry, and for models with several inputs and outputs.
 */
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeOutput } from '../../lib/inference/codec.ts';
import type { Datatype } from '../../lib/package/manifest.ts';
import { CASES } from '../fixtures/datatype-cases.ts';
import { identityModel, MULTI_IO_BIAS, mlpModel, mlpReference, multiIoModel } from '../fixtures/models.ts';
import { call, infer, type Served, serveFixture } from './harness.ts';

describe('identity models: HTTP answers equal a direct session.run, for every datatype but BF16', () => {
  it.each(Object.keys(CASES) as Exclude<Datatype, 'BF16'>[])('%s', async (datatype) => {
    const served = await serveFixture(identityModel(datatype), { pack: { name: 'identity' } });
    try {
      const { values, tensor } = CASES[datatype];
      const direct = await served.model.session.run({ x: tensor([2, 3]) });
      const expected = [encodeOutput('y', direct.y as ort.Tensor)];

      const flat = await infer(
        served.url,
        { id: `flat-${datatype}`, inputs: [{ name: 'x', datatype, shape: [2, 3], data: values }] },
        '/v2/models/identity/infer',
      );
      expect(flat.status).toBe(200);
      expect(flat.body).toEqual({
        model_name: 'identity',
        model_version: '1.0.0',
        id: `flat-${datatype}`,
        outputs: expected,
      });

      const nested = await infer(
        served.url,
        { inputs: [{ name: 'x', datatype, shape: [2, 3], data: [values.slice(0, 3), values.slice(3)] }] },
        '/v2/models/identity/versions/1.0.0/infer',
      );
      expect(nested.status).toBe(200);
      expect(nested.body).toEqual({ model_name: 'identity', model_version: '1.0.0', outputs: expected });
      expect('id' in nested.body).toBe(false);

      const metadata = await call(served.url, 'GET', '/v2/models/identity');
      expect(metadata.body.inputs).toEqual([{ name: 'x', datatype, shape: [-1, 3] }]);
    } finally {
      await served.close();
    }
  });
});

describe('multi-input, multi-output model', () => {
  let served: Served;
  const features = [
    [1, -2, 0.5],
    [-0.25, 3, 0],
  ];
  const ids = [1, -5, '9007199254740993', 0];
  const request = {
    inputs: [
      { name: 'features', datatype: 'FP32', shape: [2, 3], data: features },
      { name: 'ids', datatype: 'INT64', shape: [4], data: ids },
    ],
  };
  let expected: ReturnType<typeof encodeOutput>[];

  beforeAll(async () => {
    served = await serveFixture(multiIoModel(), { pack: { name: 'multi', version: '2.1.0' } });
    const direct = await served.model.session.run({
      features: new ort.Tensor('float32', Float32Array.from(features.flat()), [2, 3]),
      ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(ids, (x) => BigInt(x)),
        [4],
      ),
    });
    expected = ['shifted', 'positive', 'doubled', 'next_ids', 'ids_f'].map((n) =>
      encodeOutput(n, direct[n] as ort.Tensor),
    );
  });
  afterAll(() => served.close());

  it('returns every output in the signature order when none are requested', async () => {
    const answer = await infer(served.url, { ...request, id: '42' }, '/v2/models/multi/infer');
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ model_name: 'multi', model_version: '2.1.0', id: '42', outputs: expected });
    expect(answer.body.outputs[0].data[0]).toBeCloseTo(1 + (MULTI_IO_BIAS[0] as number), 6);
    expect(answer.body.outputs[3].data).toEqual([2, -4, '9007199254740994', 1]);
  });

  it('returns exactly the requested outputs, in the requested order', async () => {
    const answer = await infer(
      served.url,
      { ...request, outputs: [{ name: 'ids_f' }, { name: 'positive' }] },
      '/v2/models/multi/versions/2.1.0/infer',
    );
    expect(answer.status).toBe(200);
    expect(answer.body.outputs).toEqual([expected[4], expected[1]]);
  });

  it('serves model metadata and readiness on plain and versioned paths', async () => {
    for (const path of ['/v2/models/multi', '/v2/models/multi/versions/2.1.0']) {
      const metadata = await call(served.url, 'GET', path);
      expect(metadata.status).toBe(200);
      expect(metadata.body).toEqual({
        name: 'multi',
        versions: ['2.1.0'],
        platform: 'onnx_onnxv1',
        inputs: served.model.signature.inputs,
        outputs: served.model.signature.outputs,
      });
      const ready = await call(served.url, 'GET', `${path}/ready`);
      expect(ready.body).toEqual({ name: 'multi', ready: true });
    }
  });

  it('answers the server endpoints', async () => {
    expect((await call(served.url, 'GET', '/v2/health/live')).body).toEqual({ live: true });
    expect((await call(served.url, 'GET', '/v2/health/ready')).body).toEqual({ ready: true });
    for (const path of ['/v2', '/v2/']) {
      expect((await call(served.url, 'GET', path)).body).toEqual({
        name: 'maap',
        version: '0.1.0',
        extensions: [],
      });
    }
    expect((await call(served.url, 'HEAD', '/v2/health/ready')).status).toBe(200);
  });

  it("echoes a caller's sane x-request-id and replaces an unsafe one", async () => {
    const echoed = await call(served.url, 'GET', '/v2/health/live', {
      headers: { 'x-request-id': 'trace-1234:abc' },
    });
    expect(echoed.headers.get('x-request-id')).toBe('trace-1234:abc');
    const replaced = await call(served.url, 'GET', '/v2/health/live', {
      headers: { 'x-request-id': 'a b<script>' },
    });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const generated = await infer(served.url, request, '/v2/models/multi/infer');
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('an MLP', () => {
  it('computes x·W + b, ReLU, for a batch, matching the JS reference', async () => {
    const served = await serveFixture(mlpModel(), { pack: { name: 'mlp' } });
    try {
      const x = [1, 2, 3, 4, -1, 0.5, 2, -3, 0, 0, 0, 0];
      const answer = await infer(
        served.url,
        { inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 4], data: x }] },
        '/v2/models/mlp/infer',
      );
      const direct = await served.model.session.run({
        x: new ort.Tensor('float32', Float32Array.from(x), [3, 4]),
      });
      expect(answer.body.outputs).toEqual([encodeOutput('y', direct.y as ort.Tensor)]);
      const reference = mlpReference(x);
      for (const [i, value] of (answer.body.outputs[0].data as number[]).entries()) {
        expect(value).toBeCloseTo(reference[i] as number, 5);
      }
    } finally {
      await served.close();
    }
  });
});
