/**
 * The seeded mutation engine of the differential tests, where a fast path is checked against zod: the draws the
 * generators share (`FuzzDraw`), the forms a valid value may be handed over in, the places of a value to damage,
 * the hostile values to put there and the mutations that do it (`Mutator`), the two runs over many cases
 * (`expectVouched`, `tally`), a counter of proxy traps and getters (`Spy`), and `show` for failure messages. Each
 * test adds what only its schema cares about (its limits, odd strings of its fields, odd keys, clashing files) as
 * options of its `Mutator`.
 */
import { types } from 'node:util';
import { expect } from 'vitest';
import { Draw } from './random.ts';

export type Obj = Record<string, unknown>;
export type Container = Obj | unknown[];
/** A place to write: a key of an object or an index of an array (one past the end included). */
export type Slot = [Container, string | number];

/** The characters of generated strings: astral ones, a lone surrogate, NUL, quotes and escapes included. */
export const ODD_CHARS: readonly string[] = [
  'a',
  'Z',
  '0',
  ' ',
  '-',
  '.',
  'é',
  '日',
  '"',
  '\\',
  '\u0000',
  '\ud800',
  '😀',
];

/** The draws the differential generators share on top of `Draw`. */
export class FuzzDraw extends Draw {
  /** Characters `string` draws from besides `ODD_CHARS`. */
  protected readonly moreChars: readonly string[] = [];
  /** A string of `min`..`max` UTF-16 units, made of `ODD_CHARS` and `moreChars`. */
  string(min: number, max: number): string {
    const chars = [...ODD_CHARS, ...this.moreChars];
    const length = this.chance(0.1) ? this.pick([min, max]) : this.int(min, Math.min(max, min + 12));
    let s = '';
    while (s.length < length) {
      const c = this.pick(chars);
      s += s.length + c.length <= length ? c : 'b';
    }
    return s;
  }
  /** An object of the entries whose value is defined, shuffled. */
  withSome(entries: [string, unknown][]): Obj {
    const present = entries.filter(([, v]) => v !== undefined);
    for (let i = present.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [present[i], present[j]] = [present[j] as [string, unknown], present[i] as [string, unknown]];
    }
    return Object.fromEntries(present);
  }
}

/** The same value with every object rebuilt with a null prototype, but for the values under an `opaque` key. */
function nullPrototypes(value: unknown, opaque: readonly string[] = []): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => nullPrototypes(v, opaque));
  const out: Obj = Object.create(null);
  for (const [k, v] of Object.entries(value)) out[k] = opaque.includes(k) ? v : nullPrototypes(v, opaque);
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * A valid value in one of the forms a caller may hand over: a JSON copy, null prototypes (see `nullPrototypes`),
 * as it is, or deep-frozen (only if `frozen`, as a frozen value cannot be mutated).
 */
function variant(g: Draw, value: Obj, frozen = true, opaque: readonly string[] = []): Obj {
  switch (g.int(0, frozen ? 3 : 2)) {
    case 0:
      return JSON.parse(JSON.stringify(value));
    case 1:
      return nullPrototypes(value, opaque) as Obj;
    case 2:
      return value;
    default:
      return deepFreeze(value);
  }
}

/**
 * Every (container, key) of `root`, plus a new key (`extra`) per object and a new index per array. Proxies are not
 * entered, nor the values under an `opaque` key (their slot is listed, what is inside is not).
 */
function slots(root: unknown, opaque: readonly string[] = []): Slot[] {
  const out: Slot[] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== 'object' || types.isProxy(node)) continue;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        out.push([node, i]);
        stack.push(node[i]);
      }
      out.push([node, node.length]);
      continue;
    }
    const obj = node as Obj;
    for (const k of Object.keys(obj)) {
      out.push([obj, k]);
      if (!opaque.includes(k)) stack.push(obj[k]);
    }
    out.push([obj, 'extra']);
  }
  return out;
}

/** [1, <hole>, 2] */
export function holed(): unknown[] {
  const a: unknown[] = new Array(3);
  a[0] = 1;
  a[2] = 2;
  return a;
}

/** An instance of a class: an object of another prototype than Object's. */
class Custom {
  name = 'x';
}

/** A revoked proxy: any look at it throws. */
export const revoked: object = (() => {
  const r = Proxy.revocable({}, {});
  r.revoke();
  return r.proxy;
})();

/**
 * Values that are wrong somewhere, or right in an unusual form, whatever the schema. Functions, so each use gets a
 * fresh one. Each `Mutator` adds the ones its schema's limits and fields call for.
 */
export const HOSTILE: readonly (() => unknown)[] = [
  () => undefined,
  () => null,
  () => true,
  () => 0,
  () => -0,
  () => 1.5,
  () => Number.NaN,
  () => Number.POSITIVE_INFINITY,
  () => Number.NEGATIVE_INFINITY,
  () => 2 ** 53,
  () => 2 ** 53 - 1,
  () => 1e300,
  () => 5e-324,
  () => 10n,
  () => Symbol('s'),
  () => () => 1,
  () => '',
  () => 'FP32',
  () => new String('FP32'),
  () => new Number(3),
  () => new Date(0),
  () => [],
  () => [1],
  () => holed(),
  () => new Array(3),
  () => ({}),
  () => ({ a: 1 }),
  () => Object.create(null),
  () => Object.create({ a: 1 }),
  () => new Custom(),
  () => new Map([['a', 1]]),
  () => new Proxy({}, {}),
  () => new Proxy([1, 2], {}),
  () => revoked,
  () => JSON.parse('{"__proto__": 1}'),
  () => ({
    get a() {
      return 1;
    },
  }),
  () => Object.defineProperty({ a: 1 }, 'b', { value: 2, enumerable: false }),
  () => ({ a: 1, [Symbol('s')]: 2 }),
];

/** Where a mutation strikes: the value being damaged, the slot drawn in it, and what that slot holds. */
export interface Spot {
  root: Obj;
  container: Container;
  key: string | number;
  value: unknown;
}

/** What a mutation may use of the `Mutator` applying it. */
export interface MutationContext {
  /** The hostile values: `HOSTILE` and the schema's own. */
  readonly hostile: readonly (() => unknown)[];
  /** The slots of a value, as the mutator walks them. */
  slots(root: unknown): Slot[];
}

/**
 * Damages `spot.root` in place, or makes another root; gives back the root. Some mutations keep the value valid, or
 * do nothing at a spot they do not fit.
 */
export type Mutation<G extends Draw = Draw> = (g: G, spot: Spot, mutator: MutationContext) => unknown;

/** Strings, numbers and array lengths at or just past a schema's limits. */
export interface Limits {
  strings: readonly string[];
  numbers: readonly number[];
  lengths: readonly number[];
}

function put(spot: Spot, value: unknown): unknown {
  (spot.container as Obj)[spot.key as string] = value;
  return spot.root;
}

/** A value of the same kind as the slot's (an array keeps its elements), at or just past a limit. */
const atLimit =
  (limits: Limits): Mutation =>
  (g, spot) => {
    const { value } = spot;
    if (typeof value === 'string') return put(spot, g.pick(limits.strings));
    if (typeof value === 'number') return put(spot, g.pick(limits.numbers));
    if (!Array.isArray(value)) return put(spot, value);
    const length = g.pick(limits.lengths);
    return put(
      spot,
      Array.from({ length }, (_, i) => (value.length > 0 ? value[i % value.length] : 1)),
    );
  };

/** The slot removed: an element spliced out of its array, a key deleted. */
const remove: Mutation = (_g, { root, container, key }) => {
  if (Array.isArray(container)) container.splice(Number(key), 1);
  else delete container[key as string];
  return root;
};

/** A hole in an array, or another prototype (or none) on a nested object or array. */
const holeOrPrototype: Mutation = (g, { root, container, key, value }) => {
  if (Array.isArray(container)) delete container[Number(key)];
  else if (value !== null && typeof value === 'object') {
    Object.setPrototypeOf(value, g.pick([null, {}, Custom.prototype, Object.prototype, Array.prototype]));
  }
  return root;
};

/** The same value, but not as a plain data property: a getter, non-enumerable or read-only. */
const redefine: Mutation = (g, { root, container, key, value }) => {
  if (Array.isArray(container)) return root;
  const desc: PropertyDescriptor = g.pick([
    { get: () => value, enumerable: true, configurable: true },
    { value, enumerable: false, configurable: true, writable: true },
    { value, enumerable: true, configurable: true, writable: false },
  ]);
  Object.defineProperty(container, key, desc);
  return root;
};

/** Half the time an object in the slot behind a transparent proxy; else (or for a non-object) `otherwise`. */
const proxyOr =
  <G extends Draw>(otherwise: Mutation<G>): Mutation<G> =>
  (g, spot, mutator) => {
    const { value } = spot;
    if (value !== null && typeof value === 'object' && g.chance(0.5)) return put(spot, new Proxy(value, {}));
    return otherwise(g, spot, mutator);
  };

/** "__proto__" as JSON.parse makes it, an own enumerable data property, in an object anywhere in the root. */
const protoMember: Mutation = (g, { root }) => {
  try {
    const text = JSON.stringify(root);
    const at = g.pick([...text.matchAll(/\{/g)].map((x) => x.index ?? 0));
    const member = `"__proto__":${g.pick(['1', '{}', '{"a":1}', '[]', '"x"', 'null'])}`;
    const close = text[at + 1] === '}';
    return JSON.parse(`${text.slice(0, at + 1)}${member}${close ? '' : ','}${text.slice(at + 1)}`);
  } catch {
    return root; // not JSON: a BigInt or a revoked proxy inside
  }
};

/** One of the hostile values in the slot. */
const hostileValue: Mutation = (g, spot, mutator) => put(spot, g.pick(mutator.hostile)());

/** Another root altogether: a hostile value. */
const hostileRoot: Mutation = (g, _spot, mutator) => g.pick(mutator.hostile)();

/** What a schema's test adds to the mutations every test makes. */
export interface MutatorOptions<G extends Draw> {
  /** Hostile values near this schema's limits and fields, on top of `HOSTILE`. */
  hostile: readonly (() => unknown)[];
  /** This schema's limits, for the values at a limit. */
  limits: Limits;
  /** What the proxy mutation does the other half of the time: a key where the schema does (or does not) look. */
  hidden: Mutation<G>;
  /** This schema's own mutations, each as likely as each common one (list one twice to make it twice as likely). */
  more: readonly Mutation<G>[];
  /** Keys whose values are the caller's own: neither rebuilt (see `variant`) nor walked for slots. */
  opaque?: readonly string[];
}

/**
 * A seeded mutation engine for one schema. Every mutation is drawn with the same odds, one of: a hostile value in
 * the slot (twice as likely), a value at a limit, removal, a hole or another prototype, another kind of property,
 * a proxy or a hidden key, "__proto__" members, a hostile root, and the schema's own.
 */
export class Mutator<G extends Draw> implements MutationContext {
  readonly hostile: readonly (() => unknown)[];
  private readonly mutations: readonly Mutation<G>[];
  private readonly opaque: readonly string[];

  constructor({ hostile, limits, hidden, more, opaque = [] }: MutatorOptions<G>) {
    this.hostile = [...HOSTILE, ...hostile];
    this.opaque = opaque;
    this.mutations = [
      hostileValue,
      hostileValue,
      atLimit(limits),
      remove,
      holeOrPrototype,
      redefine,
      proxyOr(hidden),
      protoMember,
      hostileRoot,
      ...more,
    ];
  }

  /** Every (container, key) of `root`, but not inside the values of opaque keys (see `slots`). */
  slots(root: unknown): Slot[] {
    return slots(root, this.opaque);
  }

  /** A valid value in one of the forms a caller may hand over (see `variant`). */
  variant(g: Draw, value: Obj, frozen = true): Obj {
    return variant(g, value, frozen, this.opaque);
  }

  /**
   * Up to `times` mutations of `value`, each of a kind and at a slot drawn at random, stopping once the value is
   * no longer an object. A mutation that throws (an earlier one made its spot read-only: a getter, a frozen or
   * non-configurable value) leaves the value as it was.
   */
  mutate(g: G, value: unknown, times: number): unknown {
    let out = value;
    for (let n = times; n > 0 && out !== null && typeof out === 'object'; n--) {
      const root = out as Obj;
      try {
        const all = this.slots(root);
        if (all.length === 0) continue; // a proxy
        const [container, key] = g.pick(all);
        const value = (container as Obj)[key as string];
        out = g.pick(this.mutations)(g, { root, container, key, value }, this);
      } catch {
        out = root;
      }
    }
    return out;
  }
}

/**
 * Checks the fast path on `count` valid values from `make`: `vouches` must vouch for each (a failure shows the
 * value), and `sound(value, where)` find its answer sound and say it vouched.
 */
export function expectVouched(
  count: number,
  make: () => unknown,
  vouches: (value: unknown) => boolean,
  sound: (value: unknown, where: string) => boolean,
): void {
  for (let n = 0; n < count; n++) {
    const value = make();
    if (!vouches(value)) expect.fail(`#${n}: the fast path refused a valid value ${show(value)}`);
    expect(sound(value, `#${n}`)).toBe(true);
  }
}

/** How a run of cases came out: vouched for by the fast path, accepted by zod alone, refused by both. */
export interface Tally {
  vouched: number;
  zodOnly: number;
  refused: number;
}

/**
 * Sorts `count` cases from `make` by outcome. `sound(value, where)` checks the fast path's answer against zod's
 * (failing the test if it is unsound) and says whether the fast path vouched; `zodAccepts` whether zod accepts.
 */
export function tally(
  count: number,
  make: () => unknown,
  sound: (value: unknown, where: string) => boolean,
  zodAccepts: (value: unknown) => boolean,
): Tally {
  const out: Tally = { vouched: 0, zodOnly: 0, refused: 0 };
  for (let n = 0; n < count; n++) {
    const value = make();
    if (sound(value, `#${n}`)) out.vouched++;
    else if (zodAccepts(value)) out.zodOnly++;
    else out.refused++;
  }
  return out;
}

/** Counts what a fast path must never run: the traps of the proxies it makes, and any getter that counts here. */
export class Spy {
  calls = 0;
  /** A proxy of `target` counting every trap that reads: get, ownKeys, getPrototypeOf, getOwnPropertyDescriptor. */
  proxy<T extends object>(target: T): T {
    return new Proxy(target, {
      get: (t, k, r) => {
        this.calls++;
        return Reflect.get(t, k, r);
      },
      ownKeys: (t) => {
        this.calls++;
        return Reflect.ownKeys(t);
      },
      getPrototypeOf: (t) => {
        this.calls++;
        return Reflect.getPrototypeOf(t);
      },
      getOwnPropertyDescriptor: (t, k) => {
        this.calls++;
        return Reflect.getOwnPropertyDescriptor(t, k);
      },
    });
  }
}

/** A printable form of a value, for a failure message: BigInts and proxies marked, cut at 3000 characters. */
export function show(value: unknown): string {
  const replace = (_: string, x: unknown) =>
    typeof x === 'bigint' ? `${x}n` : typeof x === 'object' && x !== null && types.isProxy(x) ? '<proxy>' : x;
  try {
    return String(JSON.stringify(value, replace)).slice(0, 3000);
  } catch {
    return '<a revoked proxy>';
  }
}
