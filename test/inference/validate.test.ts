import { describe, expect, it } from 'vitest';
import { InferenceRequestError } from '../../lib/errors.ts';
import type { DecodeLimits } from '../../lib/inference/codec.ts';
import { type Signature, validateRequest } from '../../lib/inference/validate.ts';
import { DATATYPES } from '../../lib/package/manifest.ts';
import { MIXED_SIGNATURE } from '../fixtures/signatures.ts';

const SIGNATURE: Signature = MIXED_SIGNATURE;

function validBody(): {
  id?: string;
  inputs: Record<string, unknown>[];
  outputs?: unknown[];
  parameters?: unknown;
} {
  return {
    id: 'req-1',
    inputs: [
      {
        name: 'x',
        datatype: 'FP32',
        shape: [2, 3],
        data: [
          [1, 2, 3],
          [4, 5, 6],
        ],
      },
      { name: 'ids', datatype: 'INT64', shape: [2], data: [1, '9007199254740993'] },
      { name: 'mask', datatype: 'BOOL', shape: [1, 2], data: [true, false] },
      { name: 'text', datatype: 'BYTES', shape: [1], data: ['hello'] },
      { name: 'pixels', datatype: 'UINT8', shape: [2, 2], data: [0, 1, 2, 255] },
    ],
  };
}

/** validBody() with input `name` changed by `patch`. */
function withInput(name: string, patch: Record<string, unknown>) {
  const body = validBody();
  body.inputs = body.inputs.map((i) => (i.name === name ? { ...i, ...patch } : i));
  return body;
}

function rejection(body: unknown, limits?: DecodeLimits, signature = SIGNATURE): string {
  try {
    validateRequest(body, signature, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(InferenceRequestError);
    expect((err as InferenceRequestError).status).toBe(400);
    return (err as Error).message;
  }
  throw new Error('expected validateRequest to throw');
}

describe('validateRequest: valid requests', () => {
  it('returns feeds for every input, all outputs, the id and the batch size', () => {
    const r = validateRequest(validBody(), SIGNATURE);
    expect(Object.keys(r.feeds)).toEqual(['x', 'ids', 'mask', 'text', 'pixels']);
    expect(r.feeds.x?.dims).toEqual([2, 3]);
    expect(Array.from(r.feeds.ids?.data as BigInt64Array)).toEqual([1n, 9007199254740993n]);
    expect(r.feeds.text?.data).toEqual(['hello']);
    expect(r.outputNames).toEqual(['y', 'z']);
    expect(r.id).toBe('req-1');
    expect(r.batchSize).toBe(2);
  });

  it('returns the requested outputs in request order; no id when none is given; batch 1 for a scalar', () => {
    const body = {
      ...validBody(),
      id: undefined,
      outputs: [{ name: 'z' }, { name: 'y', parameters: { binary_data: false } }],
    };
    const r = validateRequest(body, SIGNATURE);
    expect(r.outputNames).toEqual(['z', 'y']);
    expect('id' in r).toBe(false);
    const scalar: Signature = {
      inputs: [{ name: 's', datatype: 'FP64', shape: [] }],
      outputs: SIGNATURE.outputs,
    };
    expect(
      validateRequest({ inputs: [{ name: 's', datatype: 'FP64', shape: [], data: [1] }] }, scalar).batchSize,
    ).toBe(1);
  });

  it('accepts an empty tensor only when allowed', () => {
    const body = withInput('x', { shape: [0, 3], data: [] });
    expect(rejection(body)).toBe('input "x": shape [0,3] describes an empty tensor (dimension 0 is 0)');
    expect(validateRequest(body, SIGNATURE, { allowEmpty: true }).feeds.x?.size).toBe(0);
  });

  it('counts an empty tensor as 0 elements however large its other dimensions, up to 2^53 - 1 of them', () => {
    const rank = 21;
    const sig: Signature = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: new Array(rank).fill(-1) }],
      outputs: SIGNATURE.outputs,
    };
    const empty = (dims: number[]) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: dims, data: [] }] });
    const wide = [...new Array(rank - 1).fill(1), 0];
    wide[0] = 2 ** 40;
    expect(validateRequest(empty(wide), sig, { allowEmpty: true }).feeds.x?.size).toBe(0);
    // Their product overflows (to Infinity, and Infinity × 0 is NaN): a 400, not onnxruntime's own error (a 500).
    const huge = [...new Array(rank - 1).fill(2 ** 52), 0];
    expect(rejection(empty(huge), { allowEmpty: true }, sig)).toMatch(
      /^input "x": shape \[4503599627370496,.*,0\]: its dimensions other than 0 multiply to more than 9007199254740991$/,
    );
    // Without a zero, the count says how many there are beyond what it can count exactly.
    expect(rejection(empty(new Array(rank).fill(2 ** 52)), { allowEmpty: true }, sig)).toMatch(
      /has more than 9007199254740991 elements, more than the limit of \d+$/,
    );
  });
});

describe('validateRequest: each bad input is a 400 naming the problem', () => {
  it.each([
    ['not an object', [1, 2], 'invalid inference request: (request): the request body must be a JSON object'],
    ['no inputs', { id: 'a' }, 'invalid inference request: inputs: must be an array of input tensors'],
    ['empty inputs', { inputs: [] }, 'invalid inference request: inputs: must list at least one input'],
    [
      'unknown field',
      { ...validBody(), input: [] },
      'invalid inference request: (request): Unrecognized key: "input"',
    ],
    ['numeric id', { ...validBody(), id: 7 }, 'invalid inference request: id: must be a string'],
    [
      'fractional dim',
      withInput('ids', { shape: [1.5] }),
      'invalid inference request: inputs[1].shape[0]: must be an integer',
    ],
    [
      'string dim',
      withInput('ids', { shape: ['2'] }),
      'invalid inference request: inputs[1].shape[0]: must be a number',
    ],
    [
      'unknown datatype',
      withInput('x', { datatype: 'FLOAT' }),
      'invalid inference request: inputs[0].datatype: must be one of',
    ],
    [
      'data not an array',
      withInput('x', { data: 5 }),
      'invalid inference request: inputs[0].data: must be an array',
    ],
    [
      'missing data',
      withInput('x', { data: undefined }),
      'invalid inference request: inputs[0].data: must be an array',
    ],
    [
      'unknown input field',
      withInput('x', { contents: {} }),
      'invalid inference request: inputs[0]: Unrecognized key: "contents"',
    ],
    [
      'nested parameter value',
      { ...validBody(), parameters: { a: { b: 1 } } },
      'invalid inference request: parameters.a: must be',
    ],
  ])('%s', (_, body, message) => {
    expect(rejection(body)).toContain(message);
  });

  it('missing input', () => {
    const body = validBody();
    body.inputs = body.inputs.filter((i) => i.name !== 'mask' && i.name !== 'text');
    expect(rejection(body)).toBe('missing inputs "mask" (BOOL [-1,2]), "text" (BYTES [-1])');
  });

  it('extra or misnamed input', () => {
    const body = validBody();
    body.inputs.push({ name: 'X', datatype: 'FP32', shape: [1], data: [1] });
    expect(rejection(body)).toBe(
      'unknown input "X": the model\'s inputs are "x", "ids", "mask", "text", "pixels"',
    );
  });

  it('duplicate input', () => {
    const body = validBody();
    body.inputs.push({ name: 'text', datatype: 'BYTES', shape: [1], data: ['again'] });
    expect(rejection(body)).toBe('input "text" is given more than once');
  });

  it('wrong datatype', () => {
    expect(rejection(withInput('x', { datatype: 'FP64' }))).toBe(
      'input "x": datatype FP64 does not match the model\'s FP32',
    );
  });

  it('wrong rank', () => {
    expect(rejection(withInput('x', { shape: [6], data: [1, 2, 3, 4, 5, 6] }))).toBe(
      'input "x": shape [6] has rank 1 but the model expects rank 2 [-1,3]',
    );
  });

  it('wrong fixed dimension', () => {
    expect(rejection(withInput('pixels', { shape: [1, 4] }))).toBe(
      'input "pixels": shape [1,4]: dimension 0 is 1 but the model expects 2 [2,2]',
    );
  });

  it('negative dimension', () => {
    expect(rejection(withInput('x', { shape: [-2, 3] }))).toBe(
      'input "x": shape [-2,3]: dimension 0 is -2; dimensions are non-negative integers',
    );
  });

  it('data count not matching the shape', () => {
    expect(rejection(withInput('x', { data: [1, 2, 3, 4, 5] }))).toBe(
      'input "x": shape [2,3] has 6 elements but data has 5',
    );
    expect(rejection(withInput('x', { data: [[1, 2, 3]] }))).toBe(
      'input "x": nested data has 1 row but dimension 0 of shape [2,3] is 2',
    );
  });

  it('non-numeric values', () => {
    expect(rejection(withInput('x', { data: [1, 2, 3, 4, '5', 6] }))).toBe(
      'input "x": data[4] is "5"; FP32 takes JSON numbers (or "NaN", "Infinity", "-Infinity")',
    );
    expect(rejection(withInput('pixels', { data: [0, null, 2, 3] }))).toBe(
      'input "pixels": data[1] is null; UINT8 takes JSON integers',
    );
    expect(rejection(withInput('ids', { data: [1, { n: 2 }] }))).toBe(
      'input "ids": data[1] is an object; INT64 takes JSON integers or decimal strings',
    );
  });

  it('NaN or Infinity where the type has none', () => {
    expect(rejection(withInput('pixels', { data: [0, 'NaN', 2, 3] }))).toBe(
      'input "pixels": data[1] is "NaN"; UINT8 takes JSON integers',
    );
    expect(rejection(withInput('ids', { data: [1, 'Infinity'] }))).toBe(
      'input "ids": data[1] is "Infinity"; INT64 takes JSON integers or decimal strings',
    );
    expect(rejection(withInput('x', { data: [1, 2, 3, 4, 5, 'nan'] }))).toMatch(
      /data\[5\] is "nan"; FP32 takes JSON numbers/,
    );
  });

  it('values out of range for the type', () => {
    expect(rejection(withInput('pixels', { data: [0, 300, 2, 3] }))).toBe(
      'input "pixels": data[1] is 300, out of range for UINT8 (0..255)',
    );
    expect(rejection(withInput('pixels', { data: [0, 1.5, 2, 3] }))).toBe(
      'input "pixels": data[1] is 1.5, not an integer (UINT8)',
    );
    expect(rejection(withInput('x', { data: [1, 2, 3, 4, 5, 1e39] }))).toBe(
      'input "x": data[5] is 1e+39, out of range for FP32',
    );
    const sig: Signature = {
      inputs: [
        { name: 'u', datatype: 'UINT64', shape: [-1] },
        { name: 'h', datatype: 'FP16', shape: [-1] },
        { name: 'i', datatype: 'INT32', shape: [-1] },
      ],
      outputs: [],
    };
    const body = (u: unknown[], h: unknown[], i: unknown[] = [1]) => ({
      inputs: [
        { name: 'u', datatype: 'UINT64', shape: [u.length], data: u },
        { name: 'h', datatype: 'FP16', shape: [h.length], data: h },
        { name: 'i', datatype: 'INT32', shape: [i.length], data: i },
      ],
    });
    expect(rejection(body([-1], [1]), {}, sig)).toBe(
      'input "u": data[0] is -1, out of range for UINT64 (0..18446744073709551615)',
    );
    expect(rejection(body(['18446744073709551616'], [1]), {}, sig)).toMatch(
      /data\[0\] is "18446744073709551616", out of range/,
    );
    expect(rejection(body([1], [1, 70000]), {}, sig)).toBe(
      'input "h": data[1] is 70000, out of range for FP16',
    );
    expect(rejection(body([1], [1], [1.5]), {}, sig)).toBe(
      'input "i": data[0] is 1.5, not an integer (INT32)',
    );
    expect(rejection(body([1], [1], [2 ** 31]), {}, sig)).toBe(
      'input "i": data[0] is 2147483648, out of range for INT32 (-2147483648..2147483647)',
    );
  });

  it('numbers that are not finite, for every float type (a literal beyond float64, 1e400, parses as Infinity)', () => {
    const sig: Signature = {
      inputs: [
        { name: 'f', datatype: 'FP32', shape: [-1] },
        { name: 'd', datatype: 'FP64', shape: [-1] },
        { name: 'h', datatype: 'FP16', shape: [-1] },
      ],
      outputs: [],
    };
    const body = (f: unknown[], d: unknown[], h: unknown[]) => ({
      inputs: [
        { name: 'f', datatype: 'FP32', shape: [f.length], data: f },
        { name: 'd', datatype: 'FP64', shape: [d.length], data: d },
        { name: 'h', datatype: 'FP16', shape: [h.length], data: h },
      ],
    });
    const hint = 'send "NaN", "Infinity" or "-Infinity" as a string if that is meant';
    expect(rejection(body([1, Number.POSITIVE_INFINITY], [1], [1]), {}, sig)).toBe(
      `input "f": data[1] is Infinity, a number beyond the range of FP32 (a literal such as 1e400 reads as Infinity); ${hint}`,
    );
    expect(rejection(body([1], [Number.NEGATIVE_INFINITY], [1]), {}, sig)).toMatch(
      /^input "d": data\[0\] is -Infinity, a number beyond the range of FP64/,
    );
    expect(rejection(body([1], [1], [2, Number.POSITIVE_INFINITY]), {}, sig)).toMatch(
      /^input "h": data\[1\] is Infinity, a number beyond the range of FP16/,
    );
    expect(rejection(body([Number.NaN], [1], [1]), {}, sig)).toBe(
      'input "f": data[0] is NaN, not a JSON number; send "NaN" as a string if that is meant',
    );
    // The strings stay the way to send them.
    const ok = validateRequest(body(['Infinity'], ['-Infinity'], ['NaN']), sig);
    expect(ok.feeds.f?.data).toEqual(new Float32Array([Number.POSITIVE_INFINITY]));
    expect(ok.feeds.d?.data).toEqual(new Float64Array([Number.NEGATIVE_INFINITY]));
    expect(ok.feeds.h?.data).toEqual(new Uint16Array([0x7e00]));
  });

  it('non-boolean for BOOL', () => {
    expect(rejection(withInput('mask', { data: [true, 1] }))).toBe(
      'input "mask": data[1] is 1; BOOL takes true or false',
    );
    expect(rejection(withInput('mask', { data: ['true', false] }))).toBe(
      'input "mask": data[0] is "true"; BOOL takes true or false',
    );
  });

  it('non-string, NUL or broken Unicode for BYTES', () => {
    expect(rejection(withInput('text', { data: [5] }))).toBe(
      'input "text": data[0] is 5; BYTES takes strings',
    );
    expect(rejection(withInput('text', { data: ['a\u0000b'] }))).toBe(
      'input "text": data[0] contains a NUL character, which onnxruntime cannot carry in a string',
    );
    expect(rejection(withInput('text', { data: ['\ud800'] }))).toBe(
      'input "text": data[0] contains an unpaired UTF-16 surrogate, which is not valid Unicode',
    );
  });

  it('more elements than the limit, per tensor and over all inputs', () => {
    expect(rejection(withInput('x', { shape: [1e9, 3], data: [] }), { maxElements: 1000 })).toBe(
      'input "x": shape [1000000000,3] has 3000000000 elements, more than the limit of 1000',
    );
    // x (6) + ids (2) + mask (2) = 10; text's 1 more is over.
    expect(rejection(validBody(), { maxElements: 10 })).toBe(
      'input "text": shape [1] has 1 element, which brings the request to 11, more than the limit of 10',
    );
    expect(Object.keys(validateRequest(validBody(), SIGNATURE, { maxElements: 15 }).feeds)).toHaveLength(5);
  });

  it('unknown, duplicate or binary outputs, binary inputs', () => {
    expect(rejection({ ...validBody(), outputs: [{ name: 'w' }] })).toBe(
      'unknown output "w": the model\'s outputs are "y", "z"',
    );
    expect(rejection({ ...validBody(), outputs: [{ name: 'y' }, { name: 'y' }] })).toBe(
      'output "y" is requested more than once',
    );
    expect(
      rejection({ ...validBody(), outputs: [{ name: 'y', parameters: { binary_data: true } }] }),
    ).toMatch(/output "y": parameters.binary_data: the binary data extension is not supported/);
    expect(rejection({ ...validBody(), parameters: { binary_data_output: true } })).toMatch(
      /binary data extension/,
    );
    expect(rejection(withInput('x', { parameters: { binary_data_size: 24 } }))).toBe(
      'input "x": binary tensor data (parameters.binary_data_size) is not supported; send the data as JSON',
    );
  });

  it('a signature naming BF16', () => {
    const sig: Signature = { inputs: [{ name: 'b', datatype: 'BF16', shape: [-1] }], outputs: [] };
    expect(rejection({ inputs: [{ name: 'b', datatype: 'BF16', shape: [1], data: [1] }] }, {}, sig)).toBe(
      'input "b": datatype BF16 is not supported by onnxruntime-node',
    );
  });
});

describe('validateRequest: seeded fuzz', () => {
  /** mulberry32: a small deterministic PRNG, so a failure reproduces. */
  function prng(seed: number): () => number {
    let s = seed | 0;
    return () => {
      s = (s + 0x6d2b79f5) | 0;
      let t = Math.imul(s ^ (s >>> 15), 1 | s);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  let deep: unknown[] = [1];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  const DEEP = deep;
  const VALUES: unknown[] = [
    undefined,
    null,
    true,
    false,
    0,
    -0,
    -1,
    1.5,
    300,
    2 ** 31,
    2 ** 53 + 2,
    1e39,
    -1e308,
    Number.MAX_VALUE,
    'NaN',
    'Infinity',
    '-Infinity',
    '',
    'x',
    '42',
    '-9223372036854775809',
    '18446744073709551615',
    'a\u0000b',
    '\ud800',
    'FP32',
    'INT64',
    'BF16',
    'BOOL',
    [],
    [1],
    [[1, 2, 3]],
    [1, 2, 3, 4, 5, 6],
    [-1],
    [0, 3],
    [1e9, 1e9],
    {},
    { name: 'x' },
    { binary_data_size: 4 },
    DEEP,
    [DEEP],
    [[DEEP, 1, 2]],
  ];

  /** Every (container, key) reachable within a few levels: where a mutation can land. */
  function slots(root: object): [Record<string | number, unknown>, string | number][] {
    const out: [Record<string | number, unknown>, string | number][] = [];
    const queue: [unknown, number][] = [[root, 0]];
    while (queue.length > 0 && out.length < 400) {
      const [node, depth] = queue.shift() as [unknown, number];
      if (node === null || typeof node !== 'object' || depth > 4) continue;
      const container = node as Record<string | number, unknown>;
      const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
      for (const k of keys) {
        out.push([container, k]);
        queue.push([container[k], depth + 1]);
      }
      if (!Array.isArray(node))
        out.push([container, ['extra', 'name', 'data', 'shape', 'parameters'][depth % 5] as string]);
    }
    return out;
  }

  function mutate(body: ReturnType<typeof validBody>, rnd: () => number): void {
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
    const inputs: unknown[] = Array.isArray(body.inputs) ? body.inputs : [];
    const picked = inputs.length > 0 ? pick(inputs) : undefined;
    const input =
      typeof picked === 'object' && picked !== null ? (picked as Record<string, unknown>) : undefined;
    switch (Math.floor(rnd() * 6)) {
      case 0: {
        const [container, key] = pick(slots(body));
        const value = pick(VALUES);
        if (value === undefined && Array.isArray(container)) container.splice(Number(key), 1);
        else if (value === undefined) delete container[key];
        else container[key] = value;
        return;
      }
      case 1: {
        const shape = Array.isArray(input?.shape) ? [...input.shape] : [];
        const k = Math.floor(rnd() * (shape.length + 1));
        shape[k] = pick([0, 1, 2, 3, -1, -7, 1e6, 2 ** 53, 1.5]);
        if (input) input.shape = rnd() < 0.3 ? shape.slice(0, -1) : shape;
        return;
      }
      case 2:
        if (input) input.data = rnd() < 0.5 || !Array.isArray(input.data) ? [input.data] : input.data.flat(2);
        return;
      case 3:
        if (input) input.datatype = pick(DATATYPES);
        return;
      case 4:
        if (rnd() < 0.5) inputs.push({ ...input });
        else inputs.splice(Math.floor(rnd() * inputs.length), 1);
        return;
      default:
        body.outputs = [{ name: pick(['y', 'z', 'w', '']) }, ...(rnd() < 0.3 ? [{ name: 'y' }] : [])];
    }
  }

  it('answers thousands of mutated requests with feeds or an InferenceRequestError, nothing else', () => {
    const rnd = prng(20240611);
    let valid = 0;
    let rejected = 0;
    for (let n = 0; n < 4000; n++) {
      const body = validBody();
      const mutations = 1 + Math.floor(rnd() * 3);
      for (let m = 0; m < mutations; m++) mutate(body, rnd);
      const limits = rnd() < 0.2 ? { maxElements: Math.floor(rnd() * 20) } : {};
      try {
        const r = validateRequest(body, SIGNATURE, limits);
        expect(Object.keys(r.feeds).sort()).toEqual(['ids', 'mask', 'pixels', 'text', 'x']);
        for (const t of Object.values(r.feeds)) expect(t.size).toBe(t.dims.reduce((a, d) => a * d, 1));
        expect(r.outputNames.every((o) => o === 'y' || o === 'z')).toBe(true);
        valid++;
      } catch (err) {
        if (!(err instanceof InferenceRequestError) || err.status !== 400 || err.message.length === 0) {
          expect.fail(`request #${n} raised ${String(err)}`);
        }
        rejected++;
      }
    }
    expect(valid).toBeGreaterThan(200);
    expect(rejected).toBeGreaterThan(2000);
  });
});
