/**
 * The manifest on the predictor's cold start without zod or semver: `readManifest` is `decodeManifest` (same
 * result, same errors) whose schema check is a hand-written structural fast path when that can vouch for the
 * manifest, and the zod schema of `manifest.ts` (loaded on demand) when it cannot. Loading zod and building the
 * schema is ~20 ms of a ~240 ms Lambda cold start; a manifest as `maap pack` writes it never needs them.
 */
import { isPlainArray, isPlainObject, ownValue } from '../plain-data.ts';
import type { Manifest } from './manifest.ts';
import {
  clashingFiles,
  isDatatype,
  isSafeEntryPath,
  MODEL_PATH,
  NAME_PATTERN,
  parseManifestJson,
} from './manifest-rules.ts';
import { isCanonicalVersion, isPlainLowerBound } from './semver-lite.ts';

/*
 * `quickManifest(value)` returning a manifest means `manifestSchema.safeParse(value)` would succeed with data
 * deep-equal to it (strictly: same values, same defaults, plain objects and dense arrays, keys in the schema's
 * order); undefined means "not sure", never "invalid": zod then decides, with its own messages. Like zod, it
 * builds a new object for every strict object and record and a new array for every array, and hands the values
 * of `z.unknown()` slots (`lineage.params`, parameters, example `data` elements) on as they are. What it follows of
 * zod/mini 4:
 * - strict objects: zod takes any non-array object, reads the declared keys (inherited ones and getters too) and
 *   refuses any other enumerable key, "__proto__" included; its output holds the declared keys present, in the
 *   schema's order, plus the defaults. Vouched for here: a plain object (prototype Object.prototype or null) whose
 *   enumerable keys are declared, own data properties, none of them undefined (zod keeps `key: undefined`; left
 *   to zod), and no declared key hidden (non-enumerable or inherited). Symbol keys and non-enumerable undeclared
 *   keys are ignored by zod and left out of its copy; so they are here.
 * - defaults (`metrics`, `lineage`, `example.tolerance` and its two numbers): a fresh `{}` or
 *   `{ absolute: 1e-5, relative: 1e-4 }` when the key is absent, as zod's shallow clone of the default.
 * - records: zod wants a "plain" object (its own test reads `constructor`), walks Reflect.ownKeys, refuses
 *   enumerable symbol keys, skips non-enumerable keys and leaves an own "__proto__" key out, unchecked. Vouched for:
 *   a plain object without symbol keys, accessors, an own "__proto__" or a function-valued own `constructor`;
 *   non-enumerable keys are skipped as zod skips them.
 * - numbers: z.number() is finite (NaN and ±Infinity refused); z.int() is Number.isSafeInteger; positive is > 0
 *   (-0 refused), nonnegative >= 0 (-0 passes unchanged). Boxed numbers and strings are refused, as by zod.
 * - strings: name (NAME_PATTERN), version (`semver.valid(v) === v`, which isCanonicalVersion answers exactly),
 *   sha256, datatypes, file paths (isSafeEntryPath: ASCII, at most 100 characters, so within zod's 1..255 code
 *   points). `requires.onnxruntime` is vouched for only as a plain lower bound (`>=1.17.0`, `>1.22.0`, what pack
 *   writes, or `>=1.17`); any other range (`>1.17`, `^1.2.0`) is left to semver, through zod.
 * - dates (`createdAt`, `lineage.startedAt`/`finishedAt`): zod's `iso.datetime({ offset: true })` pattern, i.e.
 *   `YYYY-MM-DDTHH:MM:SS(.digits)?` then `Z` or `±HH:MM`, hours 00-23, minutes and seconds 00-59, a real calendar
 *   day (Gregorian leap years, year 0000 included): the same language as zod's regular expression, written as a
 *   shape check and a day count.
 * - `files`: the superRefine's case-folded clash check (reserved names, a path listed twice, a file that is also a
 *   folder of another) is run as zod runs it; any clash is left to zod.
 * - arrays: only ordinary ones (prototype Array.prototype); a hole reads as undefined, which fails a typed element
 *   as in zod and becomes an explicit undefined in a `z.unknown()` array as in zod's copy.
 * - proxies anywhere are left to zod before anything touches them, so no trap runs twice; those in `z.unknown()`
 *   slots are never touched, by zod or here, and are handed on.
 * Not looked for, as no JSON value has them: accessor elements and non-index properties of arrays (zod reads the
 * elements through them and ignores the rest; so does this).
 */

type Parse<T> = (value: unknown) => T | undefined;

/** A declared key of a strict object: required, optional, or defaulted (a factory of zod's fresh default). */
interface Field {
  readonly parse: Parse<unknown>;
  readonly absent?: 'optional' | (() => unknown);
}

/** z.strictObject(shape): a new object of the declared keys present, in the shape's order, defaults applied. */
function strictObject<T>(shape: Readonly<Record<string, Field>>): Parse<T> {
  const keys = Object.keys(shape);
  const fields = keys.map((k) => shape[k] as Field);
  const index = new Map(keys.map((k, i) => [k, i]));
  return (value) => {
    if (!isPlainObject(value)) return undefined;
    const found: unknown[] = [];
    for (const key in value) {
      // an undeclared key ("__proto__" included) is refused by zod
      const i = index.get(key);
      if (i === undefined) return undefined;
      const raw = ownValue(value, key);
      const parsed = raw === undefined ? undefined : (fields[i] as Field).parse(raw);
      if (parsed === undefined) return undefined;
      found[i] = parsed;
    }
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      const absent = (fields[i] as Field).absent;
      if (found[i] !== undefined) out[key] = found[i];
      // a hidden key (non-enumerable or inherited: zod reads it), or a required one missing
      else if (key in value || absent === undefined) return undefined;
      else if (absent !== 'optional') out[key] = absent();
    }
    return out as T;
  };
}

/**
 * z.record(z.string(), value): a new object of the enumerable own keys. `parseValue` null is z.unknown(): values
 * handed on as they are, undefined included.
 */
function record<V>(parseValue: Parse<V> | null): Parse<Record<string, V>> {
  return (value) => {
    if (!isPlainObject(value) || Object.getOwnPropertySymbols(value).length > 0) return undefined;
    const out: Record<string, V> = {};
    for (const key of Object.getOwnPropertyNames(value)) {
      const d = Object.getOwnPropertyDescriptor(value, key) as PropertyDescriptor;
      if (d.writable === undefined || key === '__proto__') return undefined;
      // zod's "is it a plain object" test reads `constructor`: a function there is left to zod
      if (key === 'constructor' && typeof d.value === 'function') return undefined;
      if (!d.enumerable) continue;
      if (parseValue === null) out[key] = d.value as V;
      else {
        const parsed = parseValue(d.value);
        if (parsed === undefined) return undefined;
        out[key] = parsed;
      }
    }
    return out;
  };
}

/** z.array(item) with z.minLength(minLength): a new, dense array. */
function array<T>(parseItem: Parse<T>, minLength = 0): Parse<T[]> {
  return (value) => {
    if (!isPlainArray(value) || value.length < minLength) return undefined;
    const out: T[] = [];
    for (let i = 0; i < value.length; i++) {
      const item = parseItem(value[i]);
      if (item === undefined) return undefined;
      out.push(item);
    }
    return out;
  };
}

/** z.array(z.unknown()): a new, dense array of the same elements (a hole becomes undefined). */
function unknownArray(value: unknown): unknown[] | undefined {
  if (!isPlainArray(value)) return undefined;
  const out: unknown[] = [];
  for (let i = 0; i < value.length; i++) out.push(value[i]);
  return out;
}

const optional = (parse: Parse<unknown>): Field => ({ parse, absent: 'optional' });
const required = (parse: Parse<unknown>): Field => ({ parse });
const defaulted = (parse: Parse<unknown>, make: () => unknown): Field => ({ parse, absent: make });

const string: Parse<string> = (v) => (typeof v === 'string' ? v : undefined);
const boolean: Parse<boolean> = (v) => (typeof v === 'boolean' ? v : undefined);
const finite: Parse<number> = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const nonNegative: Parse<number> = (v) =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
const bytes: Parse<number> = (v) =>
  Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : undefined;
const positiveInt: Parse<number> = (v) =>
  Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : undefined;
const dimension: Parse<number> = (v) =>
  Number.isSafeInteger(v) && (v as number) >= -1 ? (v as number) : undefined;

const matching =
  (pattern: RegExp): Parse<string> =>
  (v) => {
    if (typeof v !== 'string') return undefined;
    pattern.lastIndex = 0; // as zod does, should the pattern ever be global
    return pattern.test(v) ? v : undefined;
  };

const sha256 = matching(/^[0-9a-f]{64}$/);
const datatype: Parse<string> = (v) => (isDatatype(v) ? v : undefined);
const nonEmpty: Parse<string> = (v) => (typeof v === 'string' && v.length > 0 ? v : undefined);
const entryPath: Parse<string> = (v) => (typeof v === 'string' && isSafeEntryPath(v) ? v : undefined);
const version: Parse<string> = (v) => (typeof v === 'string' && isCanonicalVersion(v) ? v : undefined);
const runtimeRange: Parse<string> = (v) => (typeof v === 'string' && isPlainLowerBound(v) ? v : undefined);

/** zod's `iso.datetime({ offset: true })` without its calendar: the day is counted below. */
const DATETIME =
  /^(\d{4})-(\d\d)-(\d\d)T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const dateTime: Parse<string> = (v) => {
  const m = typeof v === 'string' ? DATETIME.exec(v) : null;
  if (m === null) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1) return undefined;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const last = month === 2 && leap ? 29 : (DAYS[month - 1] as number);
  return day <= last ? (v as string) : undefined;
};

type Tensor = Manifest['signature']['inputs'][number];
type Example = NonNullable<Manifest['example']>;
type FileEntry = Manifest['files'][number];

const tensorSpec = strictObject<Tensor>({
  name: required(nonEmpty),
  datatype: required(datatype),
  shape: required(array(dimension)),
});

const stringRecord = record(null);

const tensorData = strictObject<Example['outputs'][number]>({
  name: required(nonEmpty),
  datatype: required(datatype),
  shape: required(array(bytes)),
  data: required(unknownArray),
  parameters: optional(stringRecord),
});

const example = strictObject<Example>({
  request: required(
    strictObject({
      inputs: required(array(tensorData, 1)),
      parameters: optional(stringRecord),
    }),
  ),
  outputs: required(array(tensorData, 1)),
  tolerance: defaulted(
    strictObject({
      absolute: defaulted(nonNegative, () => 1e-5),
      relative: defaulted(nonNegative, () => 1e-4),
    }),
    () => ({ absolute: 1e-5, relative: 1e-4 }),
  ),
});

const histogramShape = strictObject<{ edges: number[]; counts: number[] }>({
  edges: required(array(finite, 2)),
  counts: required(array(bytes)),
});
/** With its refinement: one count per bin. */
const histogram: Parse<{ edges: number[]; counts: number[] }> = (v) => {
  const h = histogramShape(v);
  return h !== undefined && h.counts.length === h.edges.length - 1 ? h : undefined;
};

const featureStats = strictObject({
  count: required(bytes),
  mean: required(finite),
  std: required(nonNegative),
  min: required(finite),
  max: required(finite),
  histogram: optional(histogram),
});

const lineage = strictObject<Manifest['lineage']>({
  gitCommit: optional(string),
  gitDirty: optional(boolean),
  command: optional(string),
  params: optional(stringRecord),
  dataset: optional(strictObject({ uri: required(string), sha256: optional(sha256) })),
  image: optional(string),
  startedAt: optional(dateTime),
  finishedAt: optional(dateTime),
  host: optional(string),
  maap: optional(string),
});

const manifestShape = strictObject<Manifest>({
  schemaVersion: required((v) => (v === 1 ? 1 : undefined)),
  name: required(matching(NAME_PATTERN)),
  version: required(version),
  createdAt: required(dateTime),
  model: required(
    strictObject({
      path: required((v) => (v === MODEL_PATH ? MODEL_PATH : undefined)),
      sha256: required(sha256),
      bytes: required(bytes),
      opset: required(positiveInt),
      irVersion: required(positiveInt),
      producer: required(string),
      domains: optional(record(positiveInt)),
    }),
  ),
  signature: required(
    strictObject({
      inputs: required(array(tensorSpec, 1)),
      outputs: required(array(tensorSpec, 1)),
    }),
  ),
  files: required(
    array(
      strictObject<FileEntry>({
        path: required(entryPath),
        sha256: required(sha256),
        bytes: required(bytes),
      }),
    ),
  ),
  requires: required(
    strictObject({
      onnxruntime: required(runtimeRange),
      opset: required(positiveInt),
      memoryMb: optional(positiveInt),
    }),
  ),
  example: optional(example),
  metrics: defaulted(record(finite), () => ({})),
  lineage: defaulted(lineage, () => ({})),
  labels: optional(array(string)),
  stats: optional(record(featureStats)),
});

/**
 * The superRefine of `manifestSchema`, as it runs there: whether two paths clash on a case-insensitive file
 * system (a reserved name, a path listed twice, a file that is also a folder of another path).
 */
/**
 * The manifest `manifestSchema.safeParse(value)` would give, when this can vouch that zod accepts `value` (see
 * above); undefined means "not sure", never "invalid": ask zod (`parseManifest`).
 */
export function quickManifest(value: unknown): Manifest | undefined {
  const m = manifestShape(value);
  return m === undefined || clashingFiles(m.files, m.model.path).length > 0 ? undefined : m;
}

/**
 * Parses and validates the raw bytes of maap.json: `decodeManifest` of `manifest.ts`, with the same result and
 * the same errors, which loads the zod schema only when `quickManifest` cannot vouch for the manifest.
 */
export async function readManifest(raw: Uint8Array): Promise<Manifest> {
  const value = parseManifestJson(raw);
  return quickManifest(value) ?? (await import('./manifest.ts')).parseManifest(value);
}
