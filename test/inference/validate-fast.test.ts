/**
 * Differential tests of the fast path of `validateRequest`: `isWellFormedRequest(body)` may answer true only when
 * zod (`inferenceRequest.safeParse`) would accept the body and give back data deep-equal to it, and it must answer
 * true for every well-formed request (or the fast path would never be taken). Seeded, so a failure reproduces;
 * the failing body is printed. A second part compares whole `validateRequest` outcomes (result or exact error
 * message) with the zod path, which a top-level Proxy forces (the fast check never vouches for a proxy).
 */
import { types } from 'node:util';
import { describe, expect, it } from 'vitest';
import { InferenceRequestError } from '../../lib/errors.ts';
import {
  inferenceRequest,
  isWellFormedRequest,
  type Signature,
  validateRequest,
} from '../../lib/inference/validate.ts';
import { DATATYPES } from '../../lib/package/manifest.ts';
import { MIXED_SIGNATURE } from '../fixtures/signatures.ts';
import { expectVouched, FuzzDraw, holed, Mutator, revoked, Spy, show, tally } from '../helpers/mutate.ts';
import { seededRandom } from '../helpers/random.ts';

type Obj = Record<string, unknown>;

class Gen extends FuzzDraw {
  dim(): number {
    return this.pick([
      0,
      1,
      2,
      3,
      4,
      16,
      -1,
      -0,
      -7,
      2 ** 31,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      this.int(-1e6, 1e6),
    ]);
  }
  scalar(): string | number | boolean {
    return this.pick<() => string | number | boolean>([
      () => this.string(0, 20),
      () => this.int(-1e9, 1e9),
      () => this.r() * 1e6,
      () => -0,
      () => Number.MAX_VALUE,
      () => this.chance(0.5),
    ])();
  }
  parameters(): Obj {
    const p: Obj = {};
    for (let n = this.int(0, 4); n > 0; n--) {
      const key = this.pick([
        'a',
        '',
        'constructor',
        'toString',
        'hasOwnProperty',
        '0',
        '10',
        'binary_data',
        'content_type',
        'ü',
        'k'.repeat(300),
      ]);
      p[key] = this.scalar();
    }
    return p;
  }
  /** Anything at all: `data` is only required to be an array. */
  data(): unknown[] {
    return Array.from({ length: this.int(0, 6) }, () =>
      this.pick<() => unknown>([
        () => this.r(),
        () => this.int(-5, 5),
        () => this.string(0, 4),
        () => null,
        () => [this.int(0, 3), [this.r()]],
        () => ({ x: 1 }),
        () => Number.NaN,
      ])(),
    );
  }
  input(): Obj {
    return this.withSome([
      ['name', this.string(1, 256)],
      ['shape', Array.from({ length: this.chance(0.05) ? 64 : this.int(0, 5) }, () => this.dim())],
      ['datatype', this.pick(DATATYPES)],
      ['data', this.data()],
      ['parameters', this.chance(0.3) ? this.parameters() : undefined],
    ]);
  }
  output(): Obj {
    return this.withSome([
      ['name', this.string(1, 256)],
      ['parameters', this.chance(0.3) ? this.parameters() : undefined],
    ]);
  }
  /** A well-formed request: every field the schema allows, in a random order, optional ones sometimes. */
  request(): Obj {
    return this.withSome([
      ['id', this.chance(0.5) ? this.string(0, 256) : undefined],
      ['parameters', this.chance(0.2) ? this.parameters() : undefined],
      ['inputs', Array.from({ length: this.int(1, 4) }, () => this.input())],
      ['outputs', this.chance(0.4) ? Array.from({ length: this.int(0, 3) }, () => this.output()) : undefined],
    ]);
  }
}

/**
 * The ways a request is damaged; some of these keep it valid. Left out on purpose: symbol keys on the strict
 * objects, and non-index properties, accessors or non-enumerable elements on arrays. Zod never reads those (so its
 * copy lacks them) and neither does validateRequest; the fast check does not pay to look for them.
 */
const DAMAGE = new Mutator<Gen>({
  // near the request's limits: 256 code points, 64 dimensions, 2^53
  hostile: [
    () => -(2 ** 53),
    () => 'x'.repeat(256),
    () => 'x'.repeat(257),
    () => '😀'.repeat(128),
    () => `${'😀'.repeat(128)}a`,
    () => 'x'.repeat(100_000),
    () => [[1, 2]],
    () => Array.from({ length: 65 }, () => 1),
    () => ({ name: 'x' }),
    () => ({ a: [1] }),
    () => ({ a: null }),
    () => JSON.parse('{"__proto__": {"a": 1}, "b": true}'),
    () => JSON.parse('[{"__proto__": []}]'),
    () => Object.defineProperty(Object.create(null), '__proto__', { value: 'x', enumerable: true }),
    () => Object.defineProperty({}, Symbol('s'), { value: 1, enumerable: false }),
  ],
  limits: {
    strings: [
      '',
      'x'.repeat(256),
      'x'.repeat(257),
      '😀'.repeat(128),
      `${'😀'.repeat(128)}a`, // 257 units, 129 code points: zod's limit counts code points
      `${'😀'.repeat(256)}a`, // 257 code points
      '\ud800'.repeat(257),
    ],
    numbers: [2 ** 53 - 1, 2 ** 53, -(2 ** 53 - 1), -(2 ** 53), -0, 0.5, -1e-300, Number.MAX_VALUE],
    lengths: [0, 1, 63, 64, 65],
  },
  // a symbol key on a `parameters` record (the only place zod looks at symbol keys), enumerable or not
  hidden: (g, { root }, mutator) => {
    const params = mutator.slots(root).flatMap(([container, key]) => {
      const v = key === 'parameters' ? (container as Obj)[key] : undefined;
      return v !== null && typeof v === 'object' && !types.isProxy(v) ? [v as Obj] : [];
    });
    if (params.length > 0) {
      Object.defineProperty(g.pick(params), Symbol('extra'), {
        value: g.scalar(),
        enumerable: g.chance(0.7),
        configurable: true,
      });
    }
    return root;
  },
  more: [
    // a key an object of the request must not have (or has under another case), hostile, maybe not enumerable
    (g, { root, container }, mutator) => {
      if (Array.isArray(container)) return root;
      Object.defineProperty(container, g.pick(['__proto__', 'constructor', '', 'Name', 'input']), {
        value: g.pick(mutator.hostile)(),
        enumerable: g.chance(0.8),
        configurable: true,
        writable: true,
      });
      return root;
    },
  ],
  // `data` is the caller's own (`z.unknown()` contents): zod hands it on as it is; only its slot is damaged
  opaque: ['data'],
});

function zodAccepts(body: unknown): boolean {
  try {
    return inferenceRequest.safeParse(body).success;
  } catch {
    return false; // a revoked proxy: zod's Array.isArray throws
  }
}

/** The one rule: the fast check vouches for a body only when zod accepts it and returns what it was given. */
function expectSound(body: unknown, where: string): boolean {
  if (!isWellFormedRequest(body)) return false;
  const parsed = inferenceRequest.safeParse(body);
  if (!parsed.success)
    expect.fail(`${where}: fast check passed ${show(body)}, zod said ${parsed.error.message}`);
  expect(parsed.data, `${where}: ${show(body)}`).toEqual(body);
  // zod hands `data` on as it is; the rest is copied
  parsed.data.inputs.forEach((input, i) => {
    expect(input.data).toBe(body.inputs[i]?.data);
  });
  return true;
}

describe('isWellFormedRequest against zod', () => {
  it('vouches for every well-formed request, in every form (JSON, null prototypes, frozen, literal)', () => {
    const g = new Gen(seededRandom(20250117));
    expectVouched(3000, () => DAMAGE.variant(g, g.request()), isWellFormedRequest, expectSound);
  });

  it('vouches only for what zod accepts unchanged, over thousands of mutated requests', () => {
    const g = new Gen(seededRandom(20250118));
    const mutated = () => DAMAGE.mutate(g, DAMAGE.variant(g, g.request(), false), g.int(1, 3));
    const { vouched, zodOnly, refused } = tally(6000, mutated, expectSound, zodAccepts);
    // every outcome is exercised: still valid after the mutation, left to zod though valid, invalid
    expect(vouched).toBeGreaterThan(300);
    expect(zodOnly).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(3000);
  });

  it('never calls a getter, nor a proxy trap', () => {
    const spy = new Spy();
    const input = {
      name: 'x',
      datatype: 'FP32',
      data: [1],
      get shape() {
        spy.calls++;
        return [1];
      },
    };
    expect(isWellFormedRequest({ inputs: [input] })).toBe(false);
    expect(isWellFormedRequest(spy.proxy({ inputs: [] }))).toBe(false);
    expect(isWellFormedRequest({ inputs: spy.proxy([]) })).toBe(false);
    expect(
      isWellFormedRequest({
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: spy.proxy([]) }],
      }),
    ).toBe(false);
    expect(isWellFormedRequest(revoked)).toBe(false);
    expect(spy.calls).toBe(0);
  });

  it('leaves to zod the cases where zod accepts but its copy differs, or it counts differently', () => {
    const input = { name: 'x', datatype: 'FP32', shape: [1], data: [1] };
    const text = JSON.stringify({ inputs: [input] });
    const cases: [string, unknown, boolean][] = [
      // zod drops an own "__proto__" key (as JSON.parse makes it) from its copy of a record, unchecked
      ['__proto__ parameter', JSON.parse(`${text.slice(0, -1)},"parameters":{"__proto__":{"a":[]}}}`), true],
      // but refuses it as an unknown key of a strict object
      ['__proto__ field', JSON.parse(`${text.slice(0, -1)},"__proto__":{}}`), false],
      // zod keeps a declared key present as undefined
      ['explicit undefined', { id: undefined, inputs: [input] }, true],
      // zod counts code points: 255 emoji and "a" are 256 code points in 511 UTF-16 units
      ['256 code points', { inputs: [{ ...input, name: `${'😀'.repeat(255)}a` }] }, true],
      ['257 code points', { inputs: [{ ...input, name: `${'😀'.repeat(255)}ab` }] }, false],
      // zod reads the declared keys of any non-array object, inherited ones included
      ['class instance', Object.assign(new (class Request {})(), { inputs: [input] }), true],
      ['inherited inputs', Object.create({ inputs: [input] }), true],
      ['non-enumerable id', Object.defineProperty({ inputs: [input] }, 'id', { value: 'a' }), true],
      [
        'getter',
        {
          get inputs() {
            return [input];
          },
        },
        true,
      ],
      // a record: zod refuses an enumerable symbol key, skips a non-enumerable key
      ['symbol parameter', { inputs: [input], parameters: { [Symbol('s')]: 1 } }, false],
      [
        'hidden parameter',
        { inputs: [input], parameters: Object.defineProperty({}, 'b', { value: [] }) },
        true,
      ],
      ['2^53 dimension', { inputs: [{ ...input, shape: [2 ** 53] }] }, false],
    ];
    for (const [label, body, zodAccepts] of cases) {
      expect(isWellFormedRequest(body), label).toBe(false);
      expect(inferenceRequest.safeParse(body).success, label).toBe(zodAccepts);
    }
    // and what it vouches for at the edges
    for (const body of [
      { inputs: [{ ...input, shape: [-0, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER] }] },
      { inputs: [{ ...input, name: 'x'.repeat(256) }], id: '😀'.repeat(128), outputs: [] },
      {
        inputs: [{ ...input, parameters: Object.create(null), data: holed() }],
        parameters: { constructor: 1 },
      },
    ]) {
      expect(expectSound(body, show(body))).toBe(true);
    }
  });
});

describe('validateRequest: the fast path and the zod path give the same outcome', () => {
  const SIGNATURE: Signature = MIXED_SIGNATURE;

  function validBody(g: Gen): Obj {
    const b = g.int(1, 3);
    const inputs: Obj[] = [
      {
        name: 'x',
        datatype: 'FP32',
        shape: [b, 3],
        data: g.chance(0.5)
          ? Array.from({ length: b }, () => [g.r(), g.r(), g.r()])
          : Array.from({ length: b * 3 }, () => g.r()),
      },
      { name: 'ids', datatype: 'INT64', shape: [2], data: [g.int(-9, 9), '9007199254740993'] },
      { name: 'mask', datatype: 'BOOL', shape: [1, 2], data: [true, false] },
      { name: 'text', datatype: 'BYTES', shape: [1], data: [g.pick(['', 'hello', '日本', '😀'])] },
      { name: 'pixels', datatype: 'UINT8', shape: [2, 2], data: [0, 1, 2, 255] },
    ];
    for (let i = inputs.length - 1; i > 0; i--) {
      const j = g.int(0, i);
      [inputs[i], inputs[j]] = [inputs[j] as Obj, inputs[i] as Obj];
    }
    return {
      ...(g.chance(0.5) ? { id: g.string(0, 20) } : {}),
      inputs,
      ...(g.chance(0.3) ? { outputs: [{ name: g.pick(['y', 'z']) }] } : {}),
      ...(g.chance(0.2) ? { parameters: { content_type: 'x' } } : {}),
    };
  }

  function outcome(body: unknown, maxElements?: number): unknown {
    try {
      const r = validateRequest(body, SIGNATURE, maxElements === undefined ? {} : { maxElements });
      return {
        keys: Object.keys(r),
        feeds: Object.entries(r.feeds).map(([k, t]) => [
          k,
          t.type,
          t.dims,
          Array.from(t.data as ArrayLike<unknown>),
        ]),
        outputNames: r.outputNames,
        id: r.id,
        batchSize: r.batchSize,
      };
    } catch (err) {
      if (err instanceof InferenceRequestError) return { error: err.message, status: err.status };
      // e.g. a revoked proxy somewhere: zod's own TypeError, the same either way
      return { threw: String(err) };
    }
  }

  it('same result or the same error message, for thousands of valid and mutated requests', () => {
    const g = new Gen(seededRandom(20250119));
    let fast = 0;
    let ok = 0;
    for (let n = 0; n < 3000; n++) {
      const mutations = g.chance(0.3) ? 0 : g.int(1, 2);
      const body = DAMAGE.mutate(g, DAMAGE.variant(g, validBody(g), mutations === 0), mutations);
      if (mutations === 0) expect(isWellFormedRequest(body), `#${n}`).toBe(true);
      if (isWellFormedRequest(body)) fast++;
      const limit = g.chance(0.1) ? g.int(0, 12) : undefined;
      const direct = outcome(body, limit);
      // a proxy is never vouched for, so this goes through zod; zod reads through it as through the body
      const viaZod = body !== null && typeof body === 'object' ? outcome(new Proxy(body, {}), limit) : direct;
      expect(direct, `#${n}: ${show(body)}`).toEqual(viaZod);
      if (!('error' in (direct as Obj))) ok++;
    }
    expect(fast).toBeGreaterThan(900);
    expect(ok).toBeGreaterThan(900);
  });
});
