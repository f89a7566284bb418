/**
 * End to end over loopback HTTP: what the predictor answers equals what onnxruntime computes when called
 * directly on the same inputs (tensors built here, independently of the codec), for every datatype
 * onnxruntime-node can carry, and for models with several inputs and outputs.
 */
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeOutput } from '../../lib/inference/codec.ts';
import { float64ToFloat16Bits } from '../../lib/inference/datatypes.ts';
import type { Datatype } from '../../lib/package/manifest.ts';
import { identityModel, MULTI_IO_BIAS, mlpModel, mlpReference, multiIoModel } from '../fixtures/models.ts';
import { call, infer, type Served, serveFixture } from './harness.ts';

const num = (v: number | string): number =>
  v === 'NaN' ? Number.NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : Number(v);

/** Six JSON values per datatype (edge values included) and the onnxruntime tensor they describe. */
const CASES: Record<
  Exclude<Datatype, 'BF16'>,
  { values: (number | string | boolean)[]; tensor: (dims: number[]) => ort.Tensor }
> = (() => {
  const t =
    <T extends ort.Tensor.Type>(type: T, data: ort.Tensor.DataTypeMap[T]) =>
    (dims: number[]) =>
      new ort.Tensor(type, data, dims);
  const c = {} as Record<
    Exclude<Datatype, 'BF16'>,
    { values: (number | string | boolean)[]; tensor: (d: number[]) => ort.Tensor }
  >;
  const add = (
    dt: Exclude<Datatype, 'BF16'>,
    values: (number | string | boolean)[],
    tensor: (d: number[]) => ort.Tensor,
  ) => (c[dt] = { values, tensor });
  let v: (number | string | boolean)[];
  v = [true, false, true, true, false, false];
  add(
    'BOOL',
    v,
    t(
      'bool',
      Uint8Array.from(v, (b) => (b ? 1 : 0)),
    ),
  );
  v = [0, 1, 127, 128, 254, 255];
  add('UINT8', v, t('uint8', Uint8Array.from(v as number[])));
  v = [-128, -1, 0, 1, 64, 127];
  add('INT8', v, t('int8', Int8Array.from(v as number[])));
  v = [0, 1, 300, 32768, 65534, 65535];
  add('UINT16', v, t('uint16', Uint16Array.from(v as number[])));
  v = [-32768, -1, 0, 1, 1000, 32767];
  add('INT16', v, t('int16', Int16Array.from(v as number[])));
  v = [0, 1, 65536, 2147483648, 4294967294, 4294967295];
  add('UINT32', v, t('uint32', Uint32Array.from(v as number[])));
  v = [-2147483648, -1, 0, 1, 65536, 2147483647];
  add('INT32', v, t('int32', Int32Array.from(v as number[])));
  v = [0, 1, 9007199254740991, '9007199254740993', '18446744073709551615', 42];
  add(
    'UINT64',
    v,
    t(
      'uint64',
      BigUint64Array.from(v, (x) => BigInt(x as number | string)),
    ),
  );
  v = ['-9223372036854775808', -9007199254740991, -1, 0, '9007199254740993', '9223372036854775807'];
  add(
    'INT64',
    v,
    t(
      'int64',
      BigInt64Array.from(v, (x) => BigInt(x as number | string)),
    ),
  );
  v = [0, 1, -2.5, 65504, 'Infinity', 'NaN'];
  add(
    'FP16',
    v,
    t('float16', Uint16Array.from(v, (x) => float64ToFloat16Bits(num(x as number | string))) as never),
  );
  v = [0, 1.5, -3.25, 3.4028234663852886e38, 'NaN', '-Infinity'];
  add(
    'FP32',
    v,
    t(
      'float32',
      Float32Array.from(v, (x) => num(x as number | string)),
    ),
  );
  v = [0, 0.1, -1e308, 5e-324, 'Infinity', 'NaN'];
  add(
    'FP64',
    v,
    t(
      'float64',
      Float64Array.from(v, (x) => num(x as number | string)),
    ),
  );
  v = ['', 'hello', 'héllo wörld', '日本語', '🙂 emoji', 'a"b\\c\n'];
  add('BYTES', v, t('string', v as string[]));
  return c;
})();

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
