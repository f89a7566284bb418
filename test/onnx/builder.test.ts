import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeModel } from '../../lib/onnx/builder.ts';
import { encodeVarint, ProtoWriter, varintLength } from '../../lib/onnx/proto-writer.ts';
import type { Datatype } from '../../lib/package/manifest.ts';
import {
  externalConstantModel,
  externalDataModel,
  gatherModel,
  gatherValue,
  INITIALIZER_INPUT_W,
  identityModel,
  initializerAsInputModel,
  MULTI_IO_BIAS,
  mapInputModel,
  mlpModel,
  mlpReference,
  multiIoModel,
  opsetModel,
  type Signature,
  sequenceOutputModel,
  writeBigGatherModel,
} from '../fixtures/models.ts';

/** Silences onnxruntime's own error log for models that are meant to fail. */
const QUIET = { logSeverityLevel: 4 } as const;
// biome-ignore format: a table
const ORT_DATATYPES: Record<string, Datatype> = {
  float32: 'FP32', float64: 'FP64', float16: 'FP16', int8: 'INT8', int16: 'INT16', int32: 'INT32', int64: 'INT64',
  uint8: 'UINT8', uint16: 'UINT16', uint32: 'UINT32', uint64: 'UINT64', bool: 'BOOL', string: 'BYTES',
};

/** The signature onnxruntime itself reads from the model, in manifest terms. */
function ortSignature(session: ort.InferenceSession): Signature {
  const specs = (list: readonly ort.InferenceSession.ValueMetadata[]) =>
    list
      .filter((m) => m.isTensor)
      .map((m) => ({
        name: m.name,
        datatype: ORT_DATATYPES[m.type] ?? m.type,
        shape: m.shape.map((d) => (typeof d === 'number' ? d : -1)),
      }));
  return { inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) } as Signature;
}

async function load(fixture: { bytes: Buffer; expected: Signature }): Promise<ort.InferenceSession> {
  const session = await ort.InferenceSession.create(fixture.bytes);
  expect(session.inputNames).toEqual(fixture.expected.inputs.map((s) => s.name));
  expect(session.outputNames).toEqual(fixture.expected.outputs.map((s) => s.name));
  expect(ortSignature(session)).toEqual(fixture.expected);
  return session;
}

const values = (tensor: ort.Tensor | undefined): unknown[] => Array.from(tensor?.data as ArrayLike<unknown>);

/** A [2, 3] sample for every datatype onnxruntime-node can feed, with edge values. */
const SAMPLES: [Datatype, ort.Tensor.Type, ort.Tensor.DataType | string[]][] = [
  ['FP32', 'float32', Float32Array.of(1.5, -2, 0, Number.NaN, Number.POSITIVE_INFINITY, 3.4e38)],
  ['FP64', 'float64', Float64Array.of(1e-300, -2, 0, Number.NaN, Number.NEGATIVE_INFINITY, 1.7e308)],
  ['FP16', 'float16', Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00)],
  ['INT8', 'int8', Int8Array.of(-128, 127, 0, 1, -1, 42)],
  ['INT16', 'int16', Int16Array.of(-32768, 32767, 0, 1, -1, 42)],
  ['INT32', 'int32', Int32Array.of(-(2 ** 31), 2 ** 31 - 1, 0, 1, -1, 42)],
  ['INT64', 'int64', BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n, 0n, 1n, -1n, 2n ** 53n + 1n)],
  ['UINT8', 'uint8', Uint8Array.of(0, 255, 1, 2, 3, 4)],
  ['UINT16', 'uint16', Uint16Array.of(0, 65535, 1, 2, 3, 4)],
  ['UINT32', 'uint32', Uint32Array.of(0, 2 ** 32 - 1, 1, 2, 3, 4)],
  ['UINT64', 'uint64', BigUint64Array.of(0n, 2n ** 64n - 1n, 1n, 2n, 3n, 2n ** 53n + 1n)],
  ['BOOL', 'bool', Uint8Array.of(1, 0, 1, 1, 0, 0)],
  ['BYTES', 'string', ['a', '', 'héllo', 'ß'.repeat(100), 'tab\there\n', '🙂']],
];

describe('proto-writer', () => {
  it('encodes varints as protobuf does, negatives as 10-byte two’s complement', () => {
    expect(encodeVarint(0).toString('hex')).toBe('00');
    expect(encodeVarint(127).toString('hex')).toBe('7f');
    expect(encodeVarint(300).toString('hex')).toBe('ac02');
    expect(encodeVarint(-1).toString('hex')).toBe('ffffffffffffffffff01');
    expect(encodeVarint(2n ** 64n - 1n).toString('hex')).toBe('ffffffffffffffffff01');
    for (const v of [0, 1, 127, 128, 16383, 16384, 2 ** 31, Number.MAX_SAFE_INTEGER, -1, 2n ** 63n]) {
      expect(varintLength(v)).toBe(encodeVarint(v).length);
    }
    expect(() => encodeVarint(2n ** 64n)).toThrow(RangeError);
    expect(() => encodeVarint(1.5)).toThrow(RangeError);
  });

  it('writes keys, lengths, nested messages, and repeated fields packed or not', () => {
    const inner = new ProtoWriter().varint(1, 150);
    const w = new ProtoWriter()
      .bytes(2, 'hi')
      .message(3, inner)
      .repeatedVarints(4, [1, 2])
      .packedVarints(5, [3, 270]);
    expect(w.finish().toString('hex')).toBe('12026869' + '1a03089601' + '20012002' + '2a03038e02');
    expect(w.length).toBe(w.finish().length);
  });
});

describe('builder', () => {
  it('refuses tensor data that does not fit the element type or the dims', () => {
    const graph = (data: Float32Array | Int32Array) => ({
      name: 'g',
      inputs: [],
      outputs: [{ name: 'c', elemType: 'FLOAT' as const, shape: [2] }],
      nodes: [],
      initializers: [{ name: 'c', elemType: 'FLOAT' as const, dims: [2], data }],
    });
    expect(() => encodeModel({ graph: graph(Float32Array.of(1)) })).toThrow(/4 bytes of data where 8/);
    expect(() => encodeModel({ graph: graph(Int32Array.of(1, 2)) })).toThrow(
      /Int32Array does not hold FLOAT/,
    );
    expect(encodeModel({ graph: graph(Float32Array.of(1, 2)) })).toEqual(
      encodeModel({ graph: graph(Float32Array.of(1, 2)) }),
    );
  });
});

describe('fixtures run in onnxruntime', () => {
  it.each(SAMPLES)('Identity returns its %s input unchanged', async (datatype, type, data) => {
    const session = await load(identityModel(datatype));
    const x = new ort.Tensor(type, data as ort.Tensor.DataType, [2, 3]);
    const { y } = await session.run({ x });
    expect(y?.type).toBe(type);
    expect(y?.dims).toEqual([2, 3]);
    expect(values(y)).toEqual(Array.from(data as ArrayLike<unknown>));
  });

  it('reports symbolic and unknown dimensions as -1, and scalars with an empty shape', async () => {
    const fixture = identityModel('FP32', [null, 'seq', 4]);
    expect(fixture.expected.inputs[0]?.shape).toEqual([-1, -1, 4]);
    await load(fixture);
    const scalar = await load(identityModel('INT64', []));
    const { y } = await scalar.run({ x: new ort.Tensor('int64', BigInt64Array.of(7n), []) });
    expect(values(y)).toEqual([7n]);
  });

  it('onnxruntime-node cuts BYTES inputs at the first NUL, but returns NULs in outputs', async () => {
    const bytes = encodeModel({
      graph: {
        name: 'nul',
        inputs: [{ name: 'x', elemType: 'STRING', shape: [1] }],
        outputs: [
          { name: 'y', elemType: 'STRING', shape: [1] },
          { name: 'c', elemType: 'STRING', shape: [1] },
        ],
        initializers: [{ name: 'c', elemType: 'STRING', dims: [1], data: ['p\u0000q'] }],
        nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
      },
    });
    const session = await ort.InferenceSession.create(bytes);
    const { y, c } = await session.run({ x: new ort.Tensor('string', ['a\u0000b'], [1]) });
    expect(values(y)).toEqual(['a']);
    expect(values(c)).toEqual(['p\u0000q']);
  });

  it('BF16 models cannot even be opened by onnxruntime-node', async () => {
    await expect(ort.InferenceSession.create(identityModel('BF16').bytes, QUIET)).rejects.toThrow(
      /Unsupported data type/,
    );
  });

  it('multiIoModel computes all five outputs', async () => {
    const session = await load(multiIoModel());
    const f = [1, -2, 3, 0, 0.5, -1];
    const out = await session.run({
      features: new ort.Tensor('float32', Float32Array.from(f), [2, 3]),
      ids: new ort.Tensor('int64', BigInt64Array.of(5n, -3n, 0n), [3]),
    });
    expect(values(out.shifted)).toEqual(f.map((v, i) => Math.fround(v + (MULTI_IO_BIAS[i % 3] ?? 0))));
    expect(values(out.positive)).toEqual(f.map((v) => (v > 0 ? 1 : 0)));
    expect(out.doubled?.type).toBe('float64');
    expect(values(out.doubled)).toEqual(f.map((v) => v * 2));
    expect(values(out.next_ids)).toEqual([6n, -2n, 1n]);
    expect(values(out.ids_f)).toEqual([5, -3, 0]);
  });

  it('mlpModel computes Relu(x·W + b) as the JS reference does', async () => {
    const session = await load(mlpModel());
    const x = [1, 2, 3, 4, -1, 0.5, -2, 3, 0, 0, 0, 0];
    const expected = mlpReference(x);
    expect(expected.some((v) => v === 0) && expected.some((v) => v > 0)).toBe(true);
    const { y } = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [3, 4]) });
    expect(y?.dims).toEqual([3, 2]);
    const actual = values(y) as number[];
    expect(actual).toHaveLength(expected.length);
    for (const [i, v] of actual.entries()) expect(v).toBeCloseTo(expected[i] ?? Number.NaN, 5);
  });

  it('gatherModel returns the requested rows of its table', async () => {
    const session = await load(gatherModel(10, 4));
    const ids = [3n, 0n, 9n, 3n];
    const { rows } = await session.run({ ids: new ort.Tensor('int64', BigInt64Array.from(ids), [4]) });
    expect(rows?.dims).toEqual([4, 4]);
    expect(values(rows)).toEqual(
      ids.flatMap((r) => [0, 1, 2, 3].map((c) => Math.fround(gatherValue(Number(r), c)))),
    );
  });

  it('initializerAsInputModel (IR 3): the initializer is not an input, and extra feeds are silently ignored', async () => {
    const session = await load(initializerAsInputModel());
    const x = new ort.Tensor('float32', Float32Array.of(1, 2), [1, 2]);
    const w = new ort.Tensor('float32', Float32Array.of(100, 100), [2]);
    const { y } = await session.run({ x, w });
    expect(values(y)).toEqual([1 + (INITIALIZER_INPUT_W[0] ?? 0), 2 + (INITIALIZER_INPUT_W[1] ?? 0)]);
  });

  it.each([
    [{ '': 17 }, [1, 2, 3, 4]],
    [{ '': 17, 'ai.onnx.ml': 3 }, [0, 3, 4, 9]],
    [{ 'ai.onnx.ml': 3 }, [0, 3, 4, 9]],
    [{ '': 21, 'ai.onnx.ml': 5 }, [0, 3, 4, 9]],
  ])('opsetModel(%o) runs', async (domains, expected) => {
    const session = await load(opsetModel(domains));
    const { y } = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4), [2, 2]) });
    expect(values(y)).toEqual(expected);
  });

  it('non-tensor values load but cannot be run through onnxruntime-node', async () => {
    const seq = sequenceOutputModel();
    const session = await ort.InferenceSession.create(seq.bytes);
    expect(session.outputNames).toEqual(['y', 'seq']);
    expect(session.outputMetadata.map((m) => m.isTensor)).toEqual([true, false]);
    const x = new ort.Tensor('float32', Float32Array.of(1, 2, 3), [1, 3]);
    await expect(session.run({ x })).rejects.toThrow(/Non tensor type/);
    const map = await ort.InferenceSession.create(mapInputModel().bytes);
    expect(map.inputMetadata.map((m) => [m.name, m.isTensor])).toEqual([['dict', false]]);
  });
});

describe('external data', () => {
  it.each([
    ['an initializer', (location: string) => externalDataModel(location)],
    ['a top-level Constant', (location: string) => externalConstantModel({ nested: false, location })],
    ['a Constant inside an If branch', (location: string) => externalConstantModel({ location })],
  ])('onnxruntime refuses a model whose %s has missing external data', async (_, make) => {
    const location = `maap-missing-${randomUUID()}.bin`;
    const fixture = make(location);
    expect(fixture.refuse.reason).toBe('external-data');
    await expect(ort.InferenceSession.create(fixture.bytes, QUIET)).rejects.toThrow(location);
  });

  describe('with the data file in the working directory', () => {
    let dir = '';
    const cwd = process.cwd();
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'maap-extdata-'));
      await writeFile(join(dir, 'constant.bin'), Float32Array.of(100, 200));
      process.chdir(dir);
    });
    afterAll(async () => {
      process.chdir(cwd);
      await rm(dir, { recursive: true, force: true });
    });

    it('a top-level one still fails to load from bytes', async () => {
      const bytes = externalConstantModel({ nested: false }).bytes;
      await expect(ort.InferenceSession.create(bytes, QUIET)).rejects.toThrow(/model_path must not be empty/);
    });

    it('a nested Constant is read from the working directory: why maap must refuse external data itself', async () => {
      const session = await ort.InferenceSession.create(externalConstantModel().bytes);
      const x = new ort.Tensor('float32', Float32Array.of(1, 2), [2]);
      const { y } = await session.run({ cond: new ort.Tensor('bool', Uint8Array.of(1), []), x });
      expect(values(y)).toEqual([101, 202]);
    });
  });
});

describe('streaming writer', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'maap-builder-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('streams in chunks that split rows, and computes what the in-memory model computes', async () => {
    const path = join(dir, 'small.onnx');
    const written = await writeBigGatherModel(path, 10 * 3 * 4, { cols: 3, chunkBytes: 20 });
    expect(written).toMatchObject({ rows: 10, cols: 3 });
    expect((await stat(path)).size).toBe(written.bytes);
    const ids = new ort.Tensor('int64', BigInt64Array.of(9n, 0n, 4n, 5n), [4]);
    const streamed = await ort.InferenceSession.create(path);
    const inMemory = await ort.InferenceSession.create(gatherModel(10, 3).bytes);
    const [a, b] = await Promise.all([streamed.run({ ids }), inMemory.run({ ids })]);
    expect(values(a.rows)).toEqual(values(b.rows));
  });

  it('writes a 64 MB model that onnxruntime loads and reads the right rows from', async () => {
    const path = join(dir, 'big.onnx');
    const written = await writeBigGatherModel(path, 64 << 20);
    expect(written.rows * written.cols * 4).toBe(64 << 20);
    expect((await stat(path)).size).toBe(written.bytes);
    const session = await ort.InferenceSession.create(path);
    expect(ortSignature(session)).toEqual(written.expected);
    const ids = [0, 1, written.rows - 1, 12345];
    const { rows } = await session.run({
      ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [4]),
    });
    expect(rows?.dims).toEqual([4, written.cols]);
    const expected = ids.flatMap((r) =>
      Array.from({ length: written.cols }, (_, c) => Math.fround(gatherValue(r, c))),
    );
    expect(values(rows)).toEqual(expected);
  });
});
