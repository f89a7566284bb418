/**
 * Differential tests of the manifest fast path: `quickManifest(value)` may answer with a manifest only when zod
 * (`manifestSchema.safeParse`) accepts `value`, and its answer must be strictly equal to zod's output (defaults
 * applied, same key order); it must answer for every manifest as `maap pack` writes it (or the predictor would
 * load zod on every cold start after all). Seeded, so a failure reproduces; the failing manifest is printed. Then
 * `readManifest`: the result or the exact error of `parseManifest` and of maap.json's decoding.
 */
import { types } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PackageIntegrityError } from '../../lib/errors.ts';
import { DATATYPES, type Manifest, manifestSchema, parseManifest } from '../../lib/package/manifest.ts';
import { quickManifest, readManifest } from '../../lib/package/manifest-fast.ts';
import { expectVouched, FuzzDraw, holed, Mutator, revoked, Spy, show, tally } from '../helpers/mutate.ts';
import { type Draw, seededRandom } from '../helpers/random.ts';

type Obj = Record<string, unknown>;

const DIGITS = '0123456789abcdef';

class Gen extends FuzzDraw {
  /** Paths too. */
  protected override readonly moreChars = ['/'];
  hex(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += DIGITS[this.int(0, 15)];
    return s;
  }
  name(): string {
    return this.pick(['mlp', 'fraud', 'a', '0', 'fraud-model-2', `a${'-'.repeat(62)}`, `9${'z'.repeat(62)}`]);
  }
  version(): string {
    return this.pick([
      '1.0.0',
      '0.0.0',
      '2.4.10',
      '2.0.0-rc.1',
      '1.4.0-alpha-2.0',
      '1.0.0-0a.-',
      '9007199254740991.0.0',
    ]);
  }
  two(n: number): string {
    return String(n).padStart(2, '0');
  }
  /** A valid RFC 3339 date-time as zod's `iso.datetime({ offset: true })` reads it. */
  dateTime(): string {
    const year = this.pick([2026, 2024, 2000, 1900, 2100, 1970, 0, 9999, this.int(0, 9999)]);
    const month = this.int(1, 12);
    const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
    const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] as number;
    const day = this.chance(0.3) ? days : this.int(1, days);
    const time = `${this.two(this.int(0, 23))}:${this.two(this.int(0, 59))}:${this.two(this.int(0, 59))}`;
    const fraction = this.pick(['', '', '.0', '.678', '.123456789', `.${'9'.repeat(30)}`]);
    const zone = this.chance(0.6)
      ? 'Z'
      : `${this.pick(['+', '-'])}${this.two(this.int(0, 23))}:${this.two(this.int(0, 59))}`;
    return `${String(year).padStart(4, '0')}-${this.two(month)}-${this.two(day)}T${time}${fraction}${zone}`;
  }
  range(): string {
    return this.pick(['>=1.17.0', '>=1.12.0', '>1.22.0', '>=0.0.0', '>=1.20.0']);
  }
  tensorSpec(): Obj {
    return this.withSome([
      ['name', this.string(1, 20)],
      ['datatype', this.pick(DATATYPES)],
      ['shape', Array.from({ length: this.int(0, 4) }, () => this.pick([-1, 0, 1, 4, 224, 2 ** 31, -0]))],
    ]);
  }
  scalar(): unknown {
    return this.pick<() => unknown>([
      () => this.string(0, 10),
      () => this.int(-1e9, 1e9),
      () => this.r() * 1e6,
      () => this.chance(0.5),
      () => null,
      () => [this.int(0, 3), { a: this.r() }],
      () => ({ nested: { deep: [1, 'x'] } }),
    ])();
  }
  unknownRecord(): Obj {
    const p: Obj = {};
    for (let n = this.int(0, 4); n > 0; n--) {
      p[this.pick(['epochs', 'lr', '', 'constructor', 'toString', '0', '10', 'ü', 'k'.repeat(300)])] =
        this.scalar();
    }
    return p;
  }
  tensorData(): Obj {
    return this.withSome([
      ['name', this.string(1, 20)],
      ['datatype', this.pick(DATATYPES)],
      ['shape', Array.from({ length: this.int(0, 3) }, () => this.int(0, 4))],
      ['data', Array.from({ length: this.int(0, 5) }, () => this.scalar())],
      ['parameters', this.chance(0.3) ? this.unknownRecord() : undefined],
    ]);
  }
  example(): Obj {
    const tolerance = this.pick<() => unknown>([
      () => undefined,
      () => ({}),
      () => ({ absolute: this.r() }),
      () => ({ relative: 0 }),
      () => ({ relative: this.r(), absolute: 1e-3 }),
    ])();
    return this.withSome([
      [
        'request',
        this.withSome([
          ['inputs', Array.from({ length: this.int(1, 3) }, () => this.tensorData())],
          ['parameters', this.chance(0.3) ? this.unknownRecord() : undefined],
        ]),
      ],
      ['outputs', Array.from({ length: this.int(1, 2) }, () => this.tensorData())],
      ['tolerance', tolerance],
    ]);
  }
  /** Up to five paths of which no two clash, even ignoring case, and none is a folder of another. */
  files(): Obj[] {
    const pool = [
      'vocab.txt',
      'labels.json',
      'tokenizer/vocab.json',
      'tokenizer/merges.txt',
      'assets/img/0.png',
      'Config.YAML',
      'a-b_c.d',
      '.hidden',
      'x'.repeat(100),
      `${'d/'.repeat(49)}f`,
    ];
    const picked: string[] = [];
    for (let n = this.int(0, 5); n > 0; n--) {
      const p = this.pick(pool);
      if (!picked.includes(p)) picked.push(p);
    }
    return picked.map((path) =>
      this.withSome([
        ['path', path],
        ['sha256', this.hex(64)],
        ['bytes', this.pick([0, 1, 284, Number.MAX_SAFE_INTEGER])],
      ]),
    );
  }
  lineage(): Obj {
    return this.withSome([
      ['gitCommit', this.chance(0.7) ? this.hex(40) : undefined],
      ['gitDirty', this.chance(0.4) ? this.chance(0.5) : undefined],
      ['command', this.chance(0.6) ? 'maap package model.onnx --name mlp' : undefined],
      ['params', this.chance(0.5) ? this.unknownRecord() : undefined],
      [
        'dataset',
        this.chance(0.3)
          ? this.withSome([
              ['uri', 's3://bucket/data.parquet'],
              ['sha256', this.chance(0.5) ? this.hex(64) : undefined],
            ])
          : undefined,
      ],
      ['image', this.chance(0.2) ? 'ghcr.io/acme/train:1' : undefined],
      ['startedAt', this.chance(0.5) ? this.dateTime() : undefined],
      ['finishedAt', this.chance(0.5) ? this.dateTime() : undefined],
      ['host', this.chance(0.5) ? this.string(0, 20) : undefined],
      ['maap', this.chance(0.5) ? '0.1.0' : undefined],
    ]);
  }
  metrics(): Obj {
    const m: Obj = {};
    for (let n = this.int(0, 4); n > 0; n--) {
      m[this.pick(['accuracy', 'auc', 'loss', '', 'constructor', '0', 'f1 macro'])] = this.pick([
        0.97,
        0,
        -0,
        -1.5,
        1e300,
        Number.MIN_VALUE,
        this.r(),
      ]);
    }
    return m;
  }
  stats(): Obj {
    const s: Obj = {};
    for (let n = this.int(1, 3); n > 0; n--) {
      const bins = this.int(1, 4);
      s[this.pick(['x', 'age', 'amount', 'constructor', 'toString'])] = this.withSome([
        ['count', this.int(0, 1000)],
        ['mean', this.r() * 10 - 5],
        ['std', this.r()],
        ['min', -5],
        ['max', 5],
        [
          'histogram',
          this.chance(0.5)
            ? this.withSome([
                ['edges', Array.from({ length: bins + 1 }, (_, i) => i - 2.5)],
                ['counts', Array.from({ length: bins }, () => this.int(0, 100))],
              ])
            : undefined,
        ],
      ]);
    }
    return s;
  }
  /** A valid manifest: every field the schema allows, in a random order, optional ones sometimes. */
  manifest(): Obj {
    const opset = this.pick([13, 17, 21, 23]);
    return this.withSome([
      ['schemaVersion', 1],
      ['name', this.name()],
      ['version', this.version()],
      ['createdAt', this.dateTime()],
      [
        'model',
        this.withSome([
          ['path', 'model.onnx'],
          ['sha256', this.hex(64)],
          ['bytes', this.int(1, 1e9)],
          ['opset', opset],
          ['irVersion', this.pick([7, 8, 10])],
          ['producer', this.pick(['pytorch 2.3.0', '', 'maap-fixtures 1.0.0'])],
          ['domains', this.chance(0.3) ? { 'ai.onnx.ml': 3, 'com.microsoft': 1 } : undefined],
        ]),
      ],
      [
        'signature',
        this.withSome([
          ['inputs', Array.from({ length: this.int(1, 3) }, () => this.tensorSpec())],
          ['outputs', Array.from({ length: this.int(1, 3) }, () => this.tensorSpec())],
        ]),
      ],
      ['files', this.files()],
      [
        'requires',
        this.withSome([
          ['onnxruntime', this.range()],
          ['opset', opset],
          ['memoryMb', this.chance(0.3) ? this.pick([128, 1769, 10240]) : undefined],
        ]),
      ],
      ['example', this.chance(0.3) ? this.example() : undefined],
      ['metrics', this.chance(0.7) ? this.metrics() : undefined],
      ['lineage', this.chance(0.8) ? this.lineage() : undefined],
      [
        'labels',
        this.chance(0.4) ? Array.from({ length: this.int(0, 3) }, () => this.string(0, 8)) : undefined,
      ],
      ['stats', this.chance(0.2) ? this.stats() : undefined],
    ]);
  }
}

/** Strings near what a field accepts, for the field named `key`. */
const ODD_STRINGS: Readonly<Record<string, readonly string[]>> = {
  date: [
    '2024-02-29T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '2024-02-30T00:00:00Z',
    '2024-13-01T00:00:00Z',
    '2024-00-10T00:00:00Z',
    '2024-04-31T00:00:00Z',
    '2024-04-30T23:59:59Z',
    '1900-02-29T00:00:00Z',
    '2000-02-29T00:00:00Z',
    '0000-02-29T00:00:00Z',
    '2100-02-29T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '2024-01-01T23:60:00Z',
    '2024-01-01T23:59:60Z',
    '2024-01-01T00:00Z',
    '2024-01-01T00:00:00',
    '2024-01-01T00:00:00.Z',
    '2024-01-01T00:00:00.123456789012Z',
    '2024-01-01T00:00:00z',
    '2024-01-01t00:00:00Z',
    '2024-01-01 00:00:00Z',
    '2024-01-01T00:00:00+01:00',
    '2024-01-01T00:00:00-00:00',
    '2024-01-01T00:00:00+24:00',
    '2024-01-01T00:00:00+23:59',
    '2024-01-01T00:00:00+0100',
    '2024-01-01T00:00:00+01',
    '2024-1-01T00:00:00Z',
    '24-01-01T00:00:00Z',
    '+002024-01-01T00:00:00Z',
    '2024-01-01T00:00:00Z\n',
    ' 2024-01-01T00:00:00Z',
    '2024-01-01',
    '２０２４-01-01T00:00:00Z',
    '2024-01-01T00:00:00.5+05:30',
  ],
  version: [
    '1.0.0',
    'v1.0.0',
    '1.0',
    '01.0.0',
    '1.0.0+build',
    '1.0.0-rc.1',
    '1.0.0-01',
    '=1.0.0',
    ' 1.0.0',
    '1.0.0 ',
    '9007199254740992.0.0',
    `1.0.0-${'a'.repeat(260)}`,
  ],
  range: [
    '>=1.17.0',
    '>1.22.0',
    '>=1.17',
    '^1.2.0',
    '~1.2.0',
    '1.17.0',
    '*',
    '',
    '>= 1.17.0',
    '>=1.17.0 <2',
    '>=v1.17.0',
    '<1.0.0',
    'x',
    '>=01.17.0',
  ],
  path: [
    'vocab.txt',
    'VOCAB.TXT',
    '../x',
    'a/../b',
    './a',
    '/abs',
    'a//b',
    'a/',
    'nul.txt',
    'COM1',
    'maap.json',
    'MAAP.SIG',
    'Model.onnx',
    'tokenizer',
    'Tokenizer/vocab.json',
    'é.txt',
    'x'.repeat(101),
    'a b',
  ],
  name: ['mlp', 'Fraud_Model', '-a', 'a'.repeat(64), 'a'.repeat(63), '', 'a\n', 'ü'],
  sha256: ['a'.repeat(64), 'A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), `${'a'.repeat(63)}g`],
  datatype: ['FP32', 'fp32', 'FLOAT', 'BYTES', 'STRING', ''],
};

/** The odd strings for the field named `key`, if it is one of ODD_STRINGS' fields. */
function fieldStrings(key: string | number): readonly string[] | undefined {
  const field =
    key === 'createdAt' || key === 'startedAt' || key === 'finishedAt'
      ? 'date'
      : key === 'onnxruntime'
        ? 'range'
        : String(key);
  return Object.hasOwn(ODD_STRINGS, field) ? ODD_STRINGS[field] : undefined;
}

/** A mutation: a string near what the slot's field accepts (any field's, for another slot). */
function oddString(g: Draw, spot: { root: Obj; container: object; key: string | number }): Obj {
  const strings = fieldStrings(spot.key) ?? (g.pick(Object.values(ODD_STRINGS)) as readonly string[]);
  (spot.container as Obj)[spot.key as string] = g.pick(strings);
  return spot.root;
}

/**
 * The ways a manifest is damaged; some of these keep it valid. Left out on purpose: non-index properties,
 * accessors or non-enumerable elements on arrays. Zod reads elements as any caller does and ignores the rest; the
 * fast path does not pay to look for them.
 */
const DAMAGE = new Mutator<Gen>({
  // near the manifest's fields and limits
  hostile: [
    () => 1,
    () => -1,
    () => 'x',
    () => 'model.onnx',
    () => '1.0.0',
    () => '2026-01-02T03:04:05Z',
    () => 'x'.repeat(300),
    () => ['a'],
    () => ({ name: 'x', datatype: 'FP32', shape: [1] }),
    () => JSON.parse('{"__proto__": {"a": 1}, "b": 2}'),
    () => Object.defineProperty(Object.create(null), '__proto__', { value: 2, enumerable: true }),
    () => ({ constructor: () => 1 }),
    () => ({ constructor: { prototype: {} } }),
  ],
  limits: {
    strings: ['', 'x'.repeat(255), 'x'.repeat(256), '😀'.repeat(128), '\ud800'],
    numbers: [2 ** 53 - 1, 2 ** 53, -1, -2, -0, 0, 0.5, -1e-300, Number.MAX_VALUE, Number.NaN],
    lengths: [0, 1, 2, 3],
  },
  // a symbol or a string key on an object, with a value, enumerable or not
  hidden: (g, { root, container }) => {
    if (Array.isArray(container)) return root;
    Object.defineProperty(container, g.chance(0.5) ? Symbol('extra') : 'hidden', {
      value: 1,
      enumerable: g.chance(0.7),
      configurable: true,
    });
    return root;
  },
  more: [
    // odd strings twice as likely as any other one mutation
    oddString,
    oddString,
    // another file: a clash with one already listed (case, folder, reserved name), or a fine one
    (g, { root }) => {
      const files = root.files;
      if (!Array.isArray(files)) return root;
      const other = files[g.int(0, files.length - 1)] as Obj | undefined;
      const base = typeof other?.path === 'string' ? other.path : 'vocab.txt';
      const path = g.pick([
        base.toUpperCase(),
        base,
        `${base}/inner.txt`,
        base.split('/')[0] ?? 'a',
        'MAAP.json',
        'Model.Onnx',
        'maap.sig',
        'new.bin',
        'deeper/new.bin',
      ]);
      files.splice(g.int(0, files.length), 0, { path, sha256: 'b'.repeat(64), bytes: 1 });
      return root;
    },
  ],
});

/** A shallow copy of `m` without `key`. */
function without(m: Obj, key: string): Obj {
  const copy = { ...m };
  delete copy[key];
  return copy;
}

type ZodOutcome = { success: true; data: Manifest } | { success: false };

function zodParse(value: unknown): ZodOutcome {
  try {
    const r = manifestSchema.safeParse(value, { jitless: true });
    return r.success ? { success: true, data: r.data } : { success: false };
  } catch {
    return { success: false }; // a revoked proxy: zod's Array.isArray throws
  }
}

/**
 * Whether `a` and `b` are the same value in every way a caller could see: the same references for what zod hands
 * on, else the same prototype, the same own keys in the same order (holes included) and the same data properties,
 * all the way down. Stricter than toStrictEqual (key order), and it neither trips on a revoked proxy that zod
 * passes on nor compares the `constructor` of two objects as toStrictEqual does.
 */
function identical(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (types.isProxy(a) || types.isProxy(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b))
    return false;
  const keys = Reflect.ownKeys(a);
  const others = Reflect.ownKeys(b);
  if (keys.length !== others.length) return false;
  return keys.every((key, i) => {
    const da = Object.getOwnPropertyDescriptor(a, key);
    const db = Object.getOwnPropertyDescriptor(b, key);
    return (
      key === others[i] &&
      da !== undefined &&
      db !== undefined &&
      da.writable !== undefined &&
      da.writable === db.writable &&
      da.enumerable === db.enumerable &&
      identical(da.value, db.value)
    );
  });
}

/**
 * Whether toStrictEqual can judge two values that `identical` found the same: not if a revoked proxy is inside
 * (its equality throws on one), nor if an object has an own "constructor" key whose values are not `===` (NaN, or
 * two equal fresh objects), which it compares as the objects' types.
 */
function judgeable(a: unknown, b: unknown): boolean {
  if (a === null || typeof a !== 'object' || b === null || typeof b !== 'object') return true;
  if (types.isProxy(a)) {
    try {
      Reflect.getPrototypeOf(a);
      return true; // handed on by both, so the same reference
    } catch {
      return false;
    }
  }
  const x = a as Obj;
  const y = b as Obj;
  if (Object.hasOwn(x, 'constructor') && x.constructor !== y.constructor) return false;
  return Object.keys(x).every((k) => judgeable(x[k], y[k]));
}

/** The one rule: a fast answer only where zod accepts, and then zod's own output, key order included. */
function expectSound(value: unknown, where: string): boolean {
  const fast = quickManifest(value);
  if (fast === undefined) return false;
  const parsed = zodParse(value);
  if (!parsed.success) expect.fail(`${where}: the fast path vouched for ${show(value)}, zod refuses it`);
  if (!identical(fast, parsed.data))
    expect.fail(`${where}: the fast path gave ${show(fast)}, zod ${show(parsed.data)}, for ${show(value)}`);
  if (judgeable(fast, parsed.data)) expect(fast, `${where}: ${show(value)}`).toStrictEqual(parsed.data);
  return true;
}

describe('quickManifest against zod', () => {
  it('vouches for every valid manifest, in every form (JSON, null prototypes, frozen, literal)', () => {
    const g = new Gen(seededRandom(20250201));
    const vouches = (m: unknown) => quickManifest(m) !== undefined;
    expectVouched(2000, () => DAMAGE.variant(g, g.manifest()), vouches, expectSound);
  });

  it('vouches only for what zod accepts, with zod’s output, over thousands of mutated manifests', () => {
    const g = new Gen(seededRandom(20250202));
    const mutated = () => DAMAGE.mutate(g, DAMAGE.variant(g, g.manifest(), false), g.int(1, 3));
    const { vouched, zodOnly, refused } = tally(6000, mutated, expectSound, (m) => zodParse(m).success);
    // every outcome is exercised: still valid after the mutation, left to zod though valid, invalid
    expect(vouched).toBeGreaterThan(600);
    expect(zodOnly).toBeGreaterThan(150);
    expect(refused).toBeGreaterThan(3000);
  });

  it('agrees with zod on date-times, field by field', () => {
    const base = JSON.parse(JSON.stringify(new Gen(seededRandom(20250203)).manifest())) as Obj;
    const years = ['0000', '0004', '0100', '1600', '1900', '2000', '2023', '2024', '2100', '2400', '9999'];
    const months = ['00', '01', '02', '04', '09', '11', '12', '13'];
    const days = ['00', '01', '28', '29', '30', '31', '32'];
    const times = [
      'T00:00:00Z',
      'T23:59:59.999+23:59',
      'T12:30:00-05:00',
      'T24:00:00Z',
      'T00:60:00Z',
      'T00:00:60Z',
      'T00:00:00',
      'T00:00Z',
      'T00:00:00.Z',
      'T00:00:00+24:00',
      'T00:00:00+00:60',
    ];
    let accepted = 0;
    let refused = 0;
    const check = (date: string) => {
      for (const m of [
        { ...base, createdAt: date },
        { ...base, lineage: { startedAt: date } },
        { ...base, lineage: { finishedAt: date } },
      ]) {
        const fast = expectSound(m, date);
        expect(fast, date).toBe(zodParse(m).success);
        if (fast) accepted++;
        else refused++;
      }
    };
    for (const y of years) for (const mo of months) for (const d of days) check(`${y}-${mo}-${d}T01:02:03Z`);
    for (const t of times) for (const d of ['2024-02-29', '2023-02-29', '2026-01-02']) check(`${d}${t}`);
    expect(accepted).toBeGreaterThan(600);
    expect(refused).toBeGreaterThan(600);
  });

  it('agrees with zod on every single replacement at every spot of a rich manifest', () => {
    let vouched = 0;
    let tried = 0;
    for (let round = 0; round < 3; round++) {
      const r = new Gen(seededRandom(300 + round));
      const m = r.manifest();
      m.example = r.example();
      m.lineage = { ...r.lineage(), params: r.unknownRecord(), startedAt: r.dateTime() };
      m.stats = r.stats();
      m.metrics = r.metrics();
      m.labels = ['a', 'b'];
      (m.model as Obj).domains = { 'ai.onnx.ml': 3 };
      (m.requires as Obj).memoryMb = 1769;
      m.files = r.files();
      const json = JSON.stringify(m);
      const rich = () => JSON.parse(json) as Obj;
      expect(quickManifest(rich()), `round ${round}`).toBeDefined();
      const spots = DAMAGE.slots(rich());
      for (let at = 0; at < spots.length; at++) {
        const [, key] = spots[at] as (typeof spots)[number];
        const values: unknown[] = [...(fieldStrings(key) ?? []), 0, -0, 0.5, -1, 2 ** 53, Number.MAX_VALUE];
        for (const make of [...DAMAGE.hostile, () => 'delete', () => 'empty array']) {
          values.push(make());
        }
        for (const value of values) {
          const copy = rich();
          const [container, slot] = DAMAGE.slots(copy)[at] as (typeof spots)[number];
          if (value === 'delete') {
            if (Array.isArray(container)) container.splice(Number(slot), 1);
            else delete container[slot as string];
          } else (container as Obj)[slot as string] = value === 'empty array' ? [] : value;
          tried++;
          if (expectSound(copy, `round ${round}, spot ${at} (${String(slot)}): ${show(value)}`)) vouched++;
        }
      }
    }
    expect(tried).toBeGreaterThan(10_000);
    expect(vouched).toBeGreaterThan(1000);
  });

  it('never calls a getter, nor a proxy trap', () => {
    const spy = new Spy();
    const valid = () => new Gen(seededRandom(7)).manifest() as Obj & { model: Obj; lineage?: unknown };
    const getter = valid();
    Object.defineProperty(getter, 'name', {
      enumerable: true,
      get() {
        spy.calls++;
        return 'mlp';
      },
    });
    expect(quickManifest(getter)).toBeUndefined();
    expect(quickManifest(spy.proxy(valid()))).toBeUndefined();
    const nested = valid();
    nested.model = spy.proxy(nested.model);
    expect(quickManifest(nested)).toBeUndefined();
    const files = valid();
    files.files = spy.proxy([]);
    expect(quickManifest(files)).toBeUndefined();
    const metrics = valid();
    metrics.metrics = spy.proxy({});
    expect(quickManifest(metrics)).toBeUndefined();
    expect(quickManifest(revoked)).toBeUndefined();
    expect(spy.calls).toBe(0);
  });

  it('leaves to zod the cases where zod accepts but its copy differs, or it asks semver', () => {
    const m = new Gen(seededRandom(11)).manifest();
    const json = JSON.stringify(m);
    const cases: [string, unknown, boolean][] = [
      // pack writes `>=X.Y.Z` or `>X.Y.Z` (and `>=X.Y` passes too); any other range (valid or not) is for semver
      ['>1.17', { ...m, requires: { onnxruntime: '>1.17', opset: 17 } }, true],
      ['^1.2.0', { ...m, requires: { onnxruntime: '^1.2.0', opset: 17 } }, true],
      ['>=1.17.0 <2', { ...m, requires: { onnxruntime: '>=1.17.0 <2', opset: 17 } }, true],
      ['a bad range', { ...m, requires: { onnxruntime: 'soon', opset: 17 } }, false],
      // zod keeps a declared key present as undefined
      ['explicit undefined', { ...m, lineage: { gitCommit: undefined } }, true],
      ['explicit undefined default', { ...m, metrics: undefined }, true],
      // zod leaves an own "__proto__" key of a record out of its copy, unchecked
      ['__proto__ metric', JSON.parse(`${json.slice(0, -1)},"metrics":{"__proto__":"x","a":1}}`), true],
      // but refuses it as an unknown key of a strict object
      ['__proto__ field', JSON.parse(`${json.slice(0, -1)},"__proto__":{}}`), false],
      // zod reads the declared keys of any non-array object, inherited ones and getters included
      ['class instance', Object.assign(new (class Manifest {})(), m), true],
      ['inherited field', Object.setPrototypeOf(without(m, 'name'), { name: 'mlp' }), true],
      ['non-enumerable field', Object.defineProperty(without(m, 'labels'), 'labels', { value: ['a'] }), true],
      [
        'getter',
        Object.defineProperty({ ...m }, 'name', { enumerable: true, configurable: true, get: () => 'mlp' }),
        true,
      ],
      ['proxy', new Proxy(m, {}), true],
      // an array of another prototype: zod copies it into an ordinary one
      ['odd array', { ...m, labels: Object.setPrototypeOf(['a'], null) }, true],
      // a record whose `constructor` is a function: zod's plain-object test refuses an arrow function
      ['constructor metric', { ...m, metrics: { constructor: () => 1 } }, false],
      ['constructor param', { ...m, lineage: { params: { constructor: () => 1 } } }, false],
      ['constructor function param', { ...m, lineage: { params: { constructor: function f() {} } } }, false],
      // but not Object, whose prototype has its own isPrototypeOf
      ['constructor Object param', { ...m, lineage: { params: { constructor: Object } } }, true],
      [
        '__proto__ param',
        JSON.parse(`${json.slice(0, -1)},"lineage":{"params":{"__proto__":{"a":1}}}}`),
        true,
      ],
      // a symbol key in a record: zod refuses it
      ['symbol metric', { ...m, metrics: { [Symbol('s')]: 1 } }, false],
      ['clash', { ...m, files: [{ path: 'Model.onnx', sha256: 'b'.repeat(64), bytes: 1 }] }, false],
    ];
    for (const [label, value, zodAccepts] of cases) {
      expect(quickManifest(value), label).toBeUndefined();
      expect(zodParse(value).success, label).toBe(zodAccepts);
    }
  });

  it('vouches at the edges, as zod does', () => {
    const m = new Gen(seededRandom(12)).manifest() as Obj & { model: Obj; signature: Obj };
    const file = (path: string) => ({ path, sha256: 'c'.repeat(64), bytes: 0 });
    const cases: unknown[] = [
      {
        ...m,
        createdAt: '2000-02-29T23:59:59.000000000001-23:59',
        lineage: { startedAt: '0000-02-29T00:00:00Z' },
      },
      { ...m, version: '9007199254740991.9007199254740991.9007199254740991-x.0' },
      { ...m, model: { ...m.model, bytes: -0 } },
      {
        ...m,
        signature: { ...m.signature, inputs: [{ name: '😀', datatype: 'BYTES', shape: [-1, -0, 0] }] },
      },
      // zod ignores symbol keys and non-enumerable keys of a strict object, and leaves them out of its copy
      { ...m, [Symbol('s')]: 1 },
      Object.defineProperty({ ...m }, 'owner', { value: 'mallory' }),
      // and skips a non-enumerable key of a record
      { ...m, metrics: Object.defineProperty({ a: 1 }, 'b', { value: Number.NaN }) },
      { ...m, metrics: { constructor: 1, toString: 2, '': 3, 0: 4 } },
      { ...m, lineage: { params: { a: undefined, b: [1, { c: 2 }], constructor: { prototype: 1 } } } },
      // a hole in a `z.unknown()` array is an explicit undefined in zod's copy
      {
        ...m,
        example: {
          request: { inputs: [{ name: 'x', datatype: 'FP32', shape: [3], data: holed() }] },
          outputs: [{ name: 'y', datatype: 'FP32', shape: [], data: [new Proxy({}, {})] }],
          tolerance: { relative: 0 },
        },
      },
      { ...m, files: [file('a/b'), file('A/c'), file('b'), file('maap.json.bak')] },
      {
        ...m,
        stats: {
          x: { count: 0, mean: 0, std: 0, min: 0, max: 0, histogram: { edges: [0, 1], counts: [5] } },
        },
      },
    ];
    for (const value of cases) expect(expectSound(value, show(value)), show(value)).toBe(true);
  });

  it('builds new objects and arrays, handing on only the values zod hands on', () => {
    const m = JSON.parse(JSON.stringify(new Gen(seededRandom(13)).manifest())) as Obj & {
      model: Obj;
      files: Obj[];
      lineage?: Obj;
    };
    const params = { epochs: 3 };
    m.lineage = { params };
    const fast = quickManifest(m) as Manifest;
    expect(fast).not.toBe(m);
    expect(fast.model).not.toBe(m.model);
    expect(fast.files).not.toBe(m.files);
    expect(fast.lineage).not.toBe(m.lineage);
    expect(fast.lineage.params).not.toBe(params);
    expect(fast.lineage.params?.epochs).toBe(3);
    // defaults are fresh objects each time
    const bare = { ...m };
    delete bare.lineage;
    delete bare.metrics;
    const a = quickManifest(bare) as Manifest;
    const b = quickManifest(bare) as Manifest;
    expect(a.lineage).toStrictEqual({});
    expect(a.metrics).toStrictEqual({});
    expect(a.lineage).not.toBe(b.lineage);
    expect(a.metrics).not.toBe(b.metrics);
  });
});

describe('readManifest', () => {
  const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  /** A valid manifest as JSON gives it back (no -0). */
  const manifest = (): Obj => JSON.parse(JSON.stringify(new Gen(seededRandom(14)).manifest()));

  /** The message of PackageIntegrityError that `fn` throws (sync or async). */
  async function refusal(fn: () => unknown): Promise<string> {
    try {
      await fn();
    } catch (err) {
      expect(err).toBeInstanceOf(PackageIntegrityError);
      return (err as Error).message;
    }
    throw new Error('expected a PackageIntegrityError');
  }

  /** What decodeManifest says of bytes that are not UTF-8 JSON. */
  function decodeMessage(raw: Uint8Array): string {
    try {
      JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
    } catch (err) {
      return `invalid manifest: maap.json is not valid UTF-8 JSON (${(err as Error).message})`;
    }
    throw new Error('expected the bytes to be refused');
  }

  it('reads a valid manifest, on the fast path or through zod, as parseManifest does', async () => {
    const m = manifest();
    expect(await readManifest(encode(m))).toStrictEqual(parseManifest(m));
    const slow = { ...m, requires: { onnxruntime: '^1.17.0', opset: 17 } };
    expect(quickManifest(slow)).toBeUndefined();
    expect(await readManifest(encode(slow))).toStrictEqual(parseManifest(slow));
    // a BOM, as TextDecoder strips it
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...encode(m)]);
    expect(await readManifest(bom)).toStrictEqual(parseManifest(m));
  });

  it('refuses bytes that are not UTF-8 JSON with the message decodeManifest gives', async () => {
    for (const raw of [
      new Uint8Array([0x7b, 0xff, 0x7d]),
      new Uint8Array([0xc3]),
      new TextEncoder().encode('{"name": '),
      new TextEncoder().encode(''),
      new TextEncoder().encode('{"a":1}{'),
    ]) {
      const message = decodeMessage(raw);
      expect(message).toMatch(/^invalid manifest: maap\.json is not valid UTF-8 JSON \(.+\)$/);
      expect(await refusal(() => readManifest(raw))).toBe(message);
    }
  });

  it('refuses a manifest zod refuses with the message parseManifest gives', async () => {
    const m = manifest();
    const values: unknown[] = [
      { ...m, name: undefined },
      { ...m, name: 'Fraud_Model', version: '1.0' },
      { ...m, owner: 'mallory' },
      { ...m, createdAt: '2024-02-30T00:00:00Z' },
      { ...m, files: [{ path: 'Maap.json', sha256: 'b'.repeat(64), bytes: 1 }] },
      null,
      [],
      'maap',
    ];
    for (const value of values) {
      const message = await refusal(() => parseManifest(value));
      expect(await refusal(() => readManifest(encode(value)))).toBe(message);
    }
    expect(await refusal(() => readManifest(encode({ ...m, name: undefined })))).toContain('name:');
  });
});
