import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { InferenceRequestError, MaapError } from '../../lib/errors.ts';
import { decodeInput, encodeOutput, type TensorJson } from '../../lib/inference/codec.ts';
import {
  allocateData,
  DATATYPE_INFO,
  float16BitsToNumber,
  float64ToFloat16Bits,
  isSupportedDatatype,
} from '../../lib/inference/datatypes.ts';
import { validateRequest } from '../../lib/inference/validate.ts';
import { DATATYPES, type Datatype, type TensorSpec } from '../../lib/package/manifest.ts';
import { identityModel, multiIoModel } from '../fixtures/models.ts';

/** Six values per datatype in canonical JSON form (what encodeOutput gives back), as a [2, 3] tensor. */
const SAMPLES: Record<Exclude<Datatype, 'BF16'>, unknown[]> = {
  BOOL: [true, false, true, false, false, true],
  UINT8: [0, 255, 1, 128, 7, 42],
  UINT16: [0, 65535, 1, 32768, 7, 42],
  UINT32: [0, 4294967295, 1, 2147483648, 7, 42],
  UINT64: [0, '18446744073709551615', 9007199254740991, '9007199254740992', '9007199254740993', 1],
  INT8: [-128, 127, 0, -1, 7, 42],
  INT16: [-32768, 32767, 0, -1, 7, 42],
  INT32: [-2147483648, 2147483647, 0, -1, 7, 42],
  INT64: ['-9223372036854775808', '9223372036854775807', -9007199254740991, '-9007199254740992', 0, -1],
  FP16: [1, -2.5, 65504, 2 ** -24, 'Infinity', 'NaN'],
  FP32: [1.5, -2.25, 3.4028234663852886e38, 'NaN', 'Infinity', '-Infinity'],
  FP64: [Math.PI, -1e308, 5e-324, 'NaN', 'Infinity', '-Infinity'],
  BYTES: ['', 'hello', 'ünïcödé', '😀 emoji', 'a b', '{"json": 1}'],
};
const SERVABLE = DATATYPES.filter((d): d is keyof typeof SAMPLES => d !== 'BF16');

const spec = (datatype: Datatype, shape: number[] = [-1, 3]): TensorSpec => ({ name: 'x', datatype, shape });
const tensor = (datatype: string, shape: number[], data: unknown[]): TensorJson => ({
  name: 'x',
  datatype,
  shape,
  data,
});
const rows = <T>(flat: T[], width: number): T[][] =>
  Array.from({ length: flat.length / width }, (_, i) => flat.slice(i * width, (i + 1) * width));

function decodeError(t: TensorJson, s: TensorSpec): InferenceRequestError {
  try {
    decodeInput(t, s);
  } catch (err) {
    expect(err).toBeInstanceOf(InferenceRequestError);
    expect((err as InferenceRequestError).status).toBe(400);
    return err as InferenceRequestError;
  }
  throw new Error('expected decodeInput to throw');
}

describe('float16 conversion', () => {
  it('rounds float64 to binary16 bits (round half to even, subnormals, overflow, specials)', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00], // halfway to 65536: ties to even overflow to Infinity
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [Number.POSITIVE_INFINITY, 0x7c00],
      [Number.NEGATIVE_INFINITY, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -14 - 2 ** -25, 0x0400], // halfway between the largest subnormal (odd) and it: rounds up
      [2 ** -24, 0x0001], // smallest subnormal
      [1023 * 2 ** -24, 0x03ff],
      [2 ** -25, 0x0000], // halfway between 0 and 2^-24: ties to even
      [2 ** -25 * 1.000001, 0x0001],
      [3 * 2 ** -25, 0x0002], // 1.5 units: ties to even
      [-(2 ** -26), 0x8000],
      [1e-10, 0x0000],
      [1 + 2 ** -11, 0x3c00], // tie: stays even
      [1 + 3 * 2 ** -11, 0x3c02], // tie: goes to even
      [1 + 2 ** -11 + 2 ** -40, 0x3c01], // just above the tie: rounding via float32 would get 0x3c00
      [5e-324, 0x0000],
    ];
    for (const [v, bits] of cases) expect([v, float64ToFloat16Bits(v)]).toEqual([v, bits]);
    expect(float64ToFloat16Bits(Number.NaN) & 0x7fff).toBe(0x7e00);
  });

  it('decodes binary16 bits to numbers', () => {
    expect(float16BitsToNumber(0x3c00)).toBe(1);
    expect(float16BitsToNumber(0x7bff)).toBe(65504);
    expect(float16BitsToNumber(0x0001)).toBe(2 ** -24);
    expect(float16BitsToNumber(0x03ff)).toBe(1023 * 2 ** -24);
    expect(float16BitsToNumber(0x3555)).toBe(0.333251953125);
    expect(Object.is(float16BitsToNumber(0x8000), -0)).toBe(true);
    expect(float16BitsToNumber(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(float16BitsToNumber(0x7e00)).toBeNaN();
    expect(float16BitsToNumber(0x7c01)).toBeNaN();
  });

  it('round-trips every bit pattern and rounds every midpoint to the even neighbour', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = float16BitsToNumber(h);
      if (Number.isNaN(v)) expect(float64ToFloat16Bits(v) & 0x7fff).toBe(0x7e00);
      else if (float64ToFloat16Bits(v) !== h)
        expect.fail(`0x${h.toString(16)} → ${v} → 0x${float64ToFloat16Bits(v).toString(16)}`);
    }
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (float16BitsToNumber(h) + float16BitsToNumber(h + 1)) / 2;
      const even = h % 2 === 0 ? h : h + 1;
      const got = [
        float64ToFloat16Bits(mid),
        float64ToFloat16Bits(mid * (1 - 2 ** -50)),
        float64ToFloat16Bits(mid * (1 + 2 ** -50)),
      ];
      if (got[0] !== even || got[1] !== h || got[2] !== h + 1)
        expect.fail(`midpoint after 0x${h.toString(16)}: ${got}`);
    }
  });
});

describe('decodeInput / encodeOutput', () => {
  it.each(SERVABLE)('round-trips %s, flat and nested, through a typed onnxruntime tensor', (datatype) => {
    const data = SAMPLES[datatype];
    const flat = decodeInput(tensor(datatype, [2, 3], data), spec(datatype));
    const nested = decodeInput(tensor(datatype, [2, 3], rows(data, 3)), spec(datatype));
    expect(flat.type).toBe(DATATYPE_INFO[datatype].ortType);
    expect(flat.dims).toEqual([2, 3]);
    expect(nested.data).toEqual(flat.data);
    expect(flat.data.constructor).toBe(allocateData(datatype, 0).constructor);
    expect(encodeOutput('y', flat)).toEqual({ name: 'y', datatype, shape: [2, 3], data });
  });

  it.each(SERVABLE)('runs %s through a real Identity model and back unchanged', async (datatype) => {
    const model = identityModel(datatype, ['batch', 3]);
    const session = await ort.InferenceSession.create(model.bytes);
    try {
      const body = { inputs: [{ name: 'x', datatype, shape: [2, 3], data: rows(SAMPLES[datatype], 3) }] };
      const { feeds, outputNames } = validateRequest(body, model.expected);
      const results = await session.run(feeds, outputNames);
      expect(outputNames).toEqual(['y']);
      expect(encodeOutput('y', results.y as ort.Tensor)).toEqual({
        name: 'y',
        datatype,
        shape: [2, 3],
        data: SAMPLES[datatype],
      });
    } finally {
      await session.release();
    }
  });

  it('computes with 64-bit integers beyond 2^53 and mixed outputs in a real model', async () => {
    const model = multiIoModel();
    const session = await ort.InferenceSession.create(model.bytes);
    try {
      const body = {
        inputs: [
          { name: 'features', datatype: 'FP32', shape: [1, 3], data: [[1, -2, 0.5]] },
          {
            name: 'ids',
            datatype: 'INT64',
            shape: [3],
            data: ['9007199254740993', -5, '-9223372036854775807'],
          },
        ],
        outputs: [{ name: 'next_ids' }, { name: 'positive' }, { name: 'doubled' }],
      };
      const { feeds, outputNames } = validateRequest(body, model.expected);
      const results = await session.run(feeds, outputNames);
      const out = outputNames.map((n) => encodeOutput(n, results[n] as ort.Tensor));
      expect(out).toEqual([
        {
          name: 'next_ids',
          datatype: 'INT64',
          shape: [3],
          data: ['9007199254740994', -4, '-9223372036854775806'],
        },
        { name: 'positive', datatype: 'BOOL', shape: [1, 3], data: [true, false, true] },
        { name: 'doubled', datatype: 'FP64', shape: [1, 3], data: [2, -4, 1] },
      ]);
    } finally {
      await session.release();
    }
  });

  it('knows onnxruntime-node cannot carry BF16: no session, and the codec refuses it by name', async () => {
    expect(isSupportedDatatype('BF16')).toBe(false);
    await expect(ort.InferenceSession.create(identityModel('BF16').bytes)).rejects.toThrow(
      /Unsupported data type/,
    );
    expect(decodeError(tensor('BF16', [1, 3], [1, 2, 3]), spec('BF16')).message).toBe(
      'input "x": datatype BF16 is not supported by onnxruntime-node',
    );
  });

  it('accepts 64-bit integers as safe JSON numbers or decimal strings, and nothing rounded', () => {
    const t = decodeInput(
      tensor('INT64', [4], ['-9223372036854775808', 2 ** 53 - 1, -(2 ** 40) - 7, '00012']),
      spec('INT64', [-1]),
    );
    expect(Array.from(t.data as BigInt64Array)).toEqual([
      -(2n ** 63n),
      2n ** 53n - 1n,
      -(2n ** 40n) - 7n,
      12n,
    ]);
    const u = decodeInput(tensor('UINT64', [2], ['18446744073709551615', 4294967296]), spec('UINT64', [-1]));
    expect(Array.from(u.data as BigUint64Array)).toEqual([2n ** 64n - 1n, 2n ** 32n]);
    expect(decodeError(tensor('INT64', [1], [2 ** 53 + 2]), spec('INT64', [-1])).message).toBe(
      'input "x": data[0] is 9007199254740994, beyond 2^53: a JSON number cannot carry it exactly; send it as a decimal string',
    );
    expect(decodeError(tensor('INT64', [1], ['9223372036854775808']), spec('INT64', [-1])).message).toMatch(
      /data\[0\] is "9223372036854775808", out of range for INT64/,
    );
    expect(decodeError(tensor('INT64', [1], ['1e3']), spec('INT64', [-1])).message).toMatch(
      /takes JSON integers or decimal strings/,
    );
  });

  it('takes scalars (shape []) as a one-element array', () => {
    const t = decodeInput(tensor('FP32', [], [2.5]), spec('FP32', []));
    expect(t.dims).toEqual([]);
    expect(encodeOutput('s', t)).toEqual({ name: 's', datatype: 'FP32', shape: [], data: [2.5] });
  });

  it('checks nested data against the shape at every level', () => {
    const s = spec('INT32', [2, 2, 2]);
    const ok = decodeInput(
      tensor(
        'INT32',
        [2, 2, 2],
        [
          [
            [1, 2],
            [3, 4],
          ],
          [
            [5, 6],
            [7, 8],
          ],
        ],
      ),
      s,
    );
    expect(Array.from(ok.data as Int32Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const msg = (data: unknown[]) => decodeError(tensor('INT32', [2, 2, 2], data), s).message;
    expect(
      msg([
        [
          [1, 2],
          [3, 4],
        ],
      ]),
    ).toBe('input "x": nested data has 1 row but dimension 0 of shape [2,2,2] is 2');
    expect(
      msg([
        [
          [1, 2],
          [3, 4],
        ],
        [[5, 6], [7]],
      ]),
    ).toBe('input "x": data[1][1] has 1 element but dimension 2 of shape [2,2,2] is 2');
    expect(
      msg([
        [
          [1, 2],
          [3, 4],
        ],
        [5, 6],
      ]),
    ).toBe('input "x": data[1][0] should be an array of 2 (shape [2,2,2] nests 3 levels)');
    expect(
      msg([
        [
          [1, 2],
          [3, [4]],
        ],
        [
          [5, 6],
          [7, 8],
        ],
      ]),
    ).toBe('input "x": data[0][1][1] is an array; INT32 takes JSON integers');
    expect(
      msg([
        [
          [1, 2],
          [3, 4],
        ],
        [
          [5, 6],
          [7, 'x'],
        ],
      ]),
    ).toBe('input "x": data[1][1][1] is "x"; INT32 takes JSON integers');
  });

  it('refuses hostile nesting 100 000 levels deep without recursion', () => {
    let deep: unknown[] = [1];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(decodeError(tensor('FP32', [1, 1], [deep]), spec('FP32', [1, 1])).message).toBe(
      'input "x": data[0][0] is an array; FP32 takes JSON numbers (or "NaN", "Infinity", "-Infinity")',
    );
    expect(decodeError(tensor('FP32', [1], deep), spec('FP32', [1])).message).toMatch(
      /data\[0\] is an array/,
    );
  });

  it('encodes non-finite floats as "NaN" / "Infinity" / "-Infinity", FP16 outputs as numbers', () => {
    const f = new ort.Tensor(
      'float32',
      Float32Array.from([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5]),
      [4],
    );
    expect(encodeOutput('f', f).data).toEqual(['NaN', 'Infinity', '-Infinity', 0.5]);
    const h = new ort.Tensor('float16', Uint16Array.from([0x3c00, 0x7e00, 0xfc00, 0x0001]), [2, 2]);
    expect(encodeOutput('h', h)).toEqual({
      name: 'h',
      datatype: 'FP16',
      shape: [2, 2],
      data: [1, 'NaN', '-Infinity', 2 ** -24],
    });
  });

  it('refuses to encode an onnxruntime type the protocol cannot name, as a server error', () => {
    const t = new ort.Tensor('int4', new Uint8Array(2), [4]);
    expect(() => encodeOutput('q', t)).toThrow(MaapError);
    expect(() => encodeOutput('q', t)).not.toThrow(InferenceRequestError);
    expect(() => encodeOutput('q', t)).toThrow(
      'output "q": onnxruntime type int4 has no Open Inference Protocol datatype',
    );
  });
});
