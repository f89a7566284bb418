/**
 * Validation of a whole Open Inference Protocol inference request against a model's signature, before the
 * session runs. Every problem is an InferenceRequestError (HTTP 400) whose message names the field or input.
 *
 * Decisions: request, input and output objects are strict (an unknown field is refused, so a typo such as
 * `"output"` or `"contents"` does not pass silently); parameter values are strings, numbers or booleans as the
 * protocol defines them; the binary data extension is refused by name; an `outputs` list that is omitted or
 * empty means every output of the model; a name listed twice (input or output) is refused.
 */
import { types } from 'node:util';
import type * as ort from 'onnxruntime-node';
import * as z from 'zod/mini';
import { InferenceRequestError } from '../errors.ts';
import { DATATYPES, type TensorSpec } from '../package/manifest.ts';
import { type DecodeLimits, decodeInput } from './codec.ts';

export interface Signature {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

export interface ValidatedRequest {
  /** One onnxruntime tensor per model input, keyed by input name. */
  feeds: Record<string, ort.Tensor>;
  /** The outputs to fetch and return, in the order requested (all of the model's when none are named). */
  outputNames: string[];
  id?: string;
  /** First dimension of the first input (1 for a scalar): what the request log calls batch size. */
  batchSize: number;
}

const parameters = z.record(
  z.string(),
  z.union([z.string(), z.number(), z.boolean()], { error: 'must be a string, number or boolean' }),
  { error: 'must be an object of string, number or boolean values' },
);
const name = z
  .string({ error: 'must be a string' })
  .check(z.minLength(1, 'must not be empty'), z.maxLength(256, 'must be at most 256 characters'));

const requestInput = z.strictObject({
  name,
  shape: z
    .array(z.number({ error: 'must be a number' }).check(z.int('must be an integer')), {
      error: 'must be an array of integers',
    })
    .check(z.maxLength(64, 'must have at most 64 dimensions')),
  datatype: z.enum(DATATYPES, { error: `must be one of ${DATATYPES.join(', ')}` }),
  parameters: z.optional(parameters),
  data: z.custom<unknown[]>((v) => Array.isArray(v), 'must be an array (flat or nested, row-major)'),
});

const requestOutput = z.strictObject({ name, parameters: z.optional(parameters) });

/** The request schema. `validateRequest` runs it only when `isWellFormedRequest` cannot vouch for the body. */
export const inferenceRequest = z.strictObject(
  {
    id: z.optional(
      z.string({ error: 'must be a string' }).check(z.maxLength(256, 'must be at most 256 characters')),
    ),
    parameters: z.optional(parameters),
    inputs: z
      .array(requestInput, { error: 'must be an array of input tensors' })
      .check(z.minLength(1, 'must list at least one input')),
    outputs: z.optional(z.array(requestOutput, { error: 'must be an array of {name}' })),
  },
  {
    error: (iss) => (iss.code === 'unrecognized_keys' ? undefined : 'the request body must be a JSON object'),
  },
);

/** A request that passed the schema: what `inferenceRequest` outputs, and what `isWellFormedRequest` vouches for. */
export type InferenceRequestJson = z.infer<typeof inferenceRequest>;

/*
 * The fast path. `isWellFormedRequest(body)` returning true means `inferenceRequest.safeParse(body)` would succeed
 * with data deep-equal to `body`, so the body is used as it is, without zod's copy and issue bookkeeping. False
 * means "not sure", never "invalid": zod then decides, with its own messages. What it follows of zod/mini 4:
 * - strict objects: zod takes any non-array object, reads the declared keys (inherited ones too) and refuses any
 *   other enumerable key, "__proto__" included. Vouched for here: a plain object (prototype Object.prototype or
 *   null) whose declared keys are own, enumerable data properties read without calling any getter, none of them
 *   undefined (zod keeps `id: undefined`; left to zod), and no declared key hidden (non-enumerable or inherited).
 * - records (`parameters`): zod wants a "plain" object, walks Reflect.ownKeys, refuses symbol keys, skips
 *   non-enumerable keys and leaves an own "__proto__" key (as JSON.parse makes it) out of its copy, unchecked.
 *   All three are left to zod, as are NaN and ±Infinity (z.number() refuses them).
 * - shape: z.number() with z.int() is exactly Number.isSafeInteger (fractions and |n| > 2^53 - 1 are refused;
 *   -0 passes unchanged); at most 64 of them.
 * - string lengths: zod counts code points, not UTF-16 units, so a name over 256 units may still pass if it holds
 *   surrogate pairs; ≤ 256 units is the safe side, and longer strings are left to zod.
 * - arrays: only ordinary ones (prototype Array.prototype); a hole reads as undefined and fails like in zod.
 *   `data` is only checked with Array.isArray: zod passes it on uncopied.
 * - proxies anywhere are left to zod before anything touches them, so no trap runs twice.
 * Not looked for, as no JSON value has them and looking would more than double the cost: symbol-keyed properties of
 * strict objects and of arrays (zod ignores them; so does validateRequest), and non-index properties or accessor
 * elements of arrays (zod's copy would drop them; an own `join`, `slice` or `entries` on a shape array would be
 * what decodeInput calls on the fast path).
 */
const DATATYPE_SET: ReadonlySet<unknown> = new Set(DATATYPES);
const OBJECT_PROTOTYPE: unknown = Object.prototype;
const ARRAY_PROTOTYPE: unknown = Array.prototype;
const describe = Object.getOwnPropertyDescriptor;
const isProxy = types.isProxy;

/** Not a proxy, not an array, an object whose prototype is Object.prototype or null. */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || isProxy(v) || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === OBJECT_PROTOTYPE || proto === null;
}

function isPlainArray(v: unknown): v is readonly unknown[] {
  return (
    typeof v === 'object' &&
    v !== null &&
    !isProxy(v) &&
    Array.isArray(v) &&
    Object.getPrototypeOf(v) === ARRAY_PROTOTYPE
  );
}

/**
 * The value of `obj[key]` for a key that for...in gave, when it is an own data property and not undefined;
 * otherwise undefined (an inherited enumerable key, a getter or setter, or an explicit undefined).
 */
function ownValue(obj: object, key: string): unknown {
  const d = describe(obj, key);
  return d === undefined || d.writable === undefined ? undefined : d.value;
}

const isName = (v: unknown): boolean => typeof v === 'string' && v.length >= 1 && v.length <= 256;

function isParameters(v: unknown): boolean {
  if (!isPlainObject(v)) return false;
  let count = 0;
  for (const key in v) {
    if (key === '__proto__') return false;
    const value = ownValue(v, key);
    if (typeof value !== 'string' && typeof value !== 'boolean' && !Number.isFinite(value)) return false;
    count++;
  }
  return Object.getOwnPropertyNames(v).length === count && Object.getOwnPropertySymbols(v).length === 0;
}

function isShape(v: unknown): boolean {
  if (!isPlainArray(v) || v.length > 64) return false;
  for (let i = 0; i < v.length; i++) if (!Number.isSafeInteger(v[i])) return false;
  return true;
}

/** `data`: zod checks Array.isArray and passes the array on as it is; a proxy is left to zod all the same. */
const isPlainValueArray = (v: unknown): boolean =>
  typeof v === 'object' && v !== null && !isProxy(v) && Array.isArray(v);

const NAME = 1;
const SHAPE = 2;
const DATATYPE = 4;
const DATA = 8;
const PARAMETERS = 16;
const REQUIRED_INPUT_FIELDS = NAME | SHAPE | DATATYPE | DATA;

function isRequestInput(v: unknown): boolean {
  if (!isPlainObject(v)) return false;
  let seen = 0;
  for (const key in v) {
    const value = ownValue(v, key);
    if (key === 'name' && isName(value)) seen |= NAME;
    else if (key === 'shape' && isShape(value)) seen |= SHAPE;
    else if (key === 'datatype' && DATATYPE_SET.has(value)) seen |= DATATYPE;
    else if (key === 'data' && isPlainValueArray(value)) seen |= DATA;
    else if (key === 'parameters' && isParameters(value)) seen |= PARAMETERS;
    else return false;
  }
  return (
    (seen & REQUIRED_INPUT_FIELDS) === REQUIRED_INPUT_FIELDS &&
    ((seen & PARAMETERS) !== 0 || !('parameters' in v))
  );
}

function isRequestOutput(v: unknown): boolean {
  if (!isPlainObject(v)) return false;
  let seen = 0;
  for (const key in v) {
    const value = ownValue(v, key);
    if (key === 'name' && isName(value)) seen |= NAME;
    else if (key === 'parameters' && isParameters(value)) seen |= PARAMETERS;
    else return false;
  }
  return (seen & NAME) !== 0 && ((seen & PARAMETERS) !== 0 || !('parameters' in v));
}

function everyItem(v: unknown, check: (item: unknown) => boolean, minLength = 0): boolean {
  if (!isPlainArray(v) || v.length < minLength) return false;
  for (let i = 0; i < v.length; i++) if (!check(v[i])) return false;
  return true;
}

const ID = 1;
const INPUTS = 2;
const OUTPUTS = 4;

/**
 * True only if `inferenceRequest.safeParse(body)` would succeed with data deep-equal to `body` (see above);
 * false means "not sure", never "invalid".
 */
export function isWellFormedRequest(body: unknown): body is InferenceRequestJson {
  if (!isPlainObject(body)) return false;
  let seen = 0;
  for (const key in body) {
    const value = ownValue(body, key);
    if (key === 'inputs' && everyItem(value, isRequestInput, 1)) seen |= INPUTS;
    else if (key === 'id' && typeof value === 'string' && value.length <= 256) seen |= ID;
    else if (key === 'outputs' && everyItem(value, isRequestOutput)) seen |= OUTPUTS;
    else if (key === 'parameters' && isParameters(value)) seen |= PARAMETERS;
    else return false;
  }
  return (
    (seen & INPUTS) !== 0 &&
    ((seen & ID) !== 0 || !('id' in body)) &&
    ((seen & OUTPUTS) !== 0 || !('outputs' in body)) &&
    ((seen & PARAMETERS) !== 0 || !('parameters' in body))
  );
}

/** "inputs[1].shape[0]" from a zod issue path. */
function fieldPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const key of path) s += typeof key === 'number' ? `[${key}]` : s ? `.${String(key)}` : String(key);
  return s || '(request)';
}

function formatZodError(error: z.core.$ZodError): string {
  const issues = error.issues.slice(0, 5).map((i) => `${fieldPath(i.path)}: ${i.message}`);
  const more = error.issues.length > 5 ? ` (and ${error.issues.length - 5} more)` : '';
  return `invalid inference request: ${issues.join('; ')}${more}`;
}

function fail(message: string): never {
  throw new InferenceRequestError(message);
}
const quote = (s: string): string => JSON.stringify(s);
const names = (specs: readonly TensorSpec[]): string => specs.map((s) => quote(s.name)).join(', ');

/**
 * Validates an inference request body (parsed JSON) against the model signature and decodes its inputs.
 * `limits.maxElements` bounds the elements of all inputs together. The schema check is `isWellFormedRequest`
 * when it vouches for the body, else zod (which names the problem).
 */
export function validateRequest(
  body: unknown,
  signature: Signature,
  limits: DecodeLimits = {},
): ValidatedRequest {
  const request = isWellFormedRequest(body) ? body : parseWithZod(body);

  if (request.parameters && request.parameters.binary_data_output === true) {
    fail('parameters.binary_data_output: the binary data extension is not supported; responses are JSON');
  }
  const outputs = outputNames(request.outputs ?? [], signature);
  const specs = signature.inputs;
  const specByName = specs.length > SCAN_LIMIT ? new Map(specs.map((s) => [s.name, s])) : undefined;
  const feeds: Record<string, ort.Tensor> = Object.create(null);
  let used = 0;
  // Indexed loops, not for...of: on the fast path these are the caller's arrays, whose own Symbol.iterator (if
  // any) zod's copy would not have had.
  const inputs = request.inputs;
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i] as InferenceRequestJson['inputs'][number];
    const spec = specByName ? specByName.get(input.name) : findLast(specs, input.name);
    if (!spec) fail(`unknown input ${quote(input.name)}: the model's inputs are ${names(signature.inputs)}`);
    if (Object.hasOwn(feeds, input.name)) fail(`input ${quote(input.name)} is given more than once`);
    const tensor = decodeInput(input, spec, limits, used);
    used += tensor.size;
    feeds[input.name] = tensor;
  }
  for (let i = 0; i < specs.length; i++) {
    if (Object.hasOwn(feeds, (specs[i] as TensorSpec).name)) continue;
    const missing = specs.filter((s) => !Object.hasOwn(feeds, s.name));
    const list = missing.map((s) => `${quote(s.name)} (${s.datatype} [${s.shape.join(',')}])`).join(', ');
    fail(`missing input${missing.length > 1 ? 's' : ''} ${list}`);
  }

  const batchSize = request.inputs[0]?.shape[0] ?? 1;
  return request.id !== undefined
    ? { feeds, outputNames: outputs, id: request.id, batchSize }
    : { feeds, outputNames: outputs, batchSize };
}

function parseWithZod(body: unknown): InferenceRequestJson {
  const parsed = inferenceRequest.safeParse(body);
  if (!parsed.success) fail(formatZodError(parsed.error));
  return parsed.data;
}

/** Up to this many model inputs, a spec is found by a scan rather than through a Map built per request. */
const SCAN_LIMIT = 16;

/** The last spec named `name`, as `new Map(specs.map(...)).get(name)` would give. */
function findLast(specs: readonly TensorSpec[], name: string): TensorSpec | undefined {
  for (let i = specs.length - 1; i >= 0; i--) {
    const spec = specs[i] as TensorSpec;
    if (spec.name === name) return spec;
  }
  return undefined;
}

function outputNames(requested: readonly z.infer<typeof requestOutput>[], signature: Signature): string[] {
  if (requested.length === 0) return signature.outputs.map((s) => s.name);
  const known = new Set(signature.outputs.map((s) => s.name));
  const seen = new Set<string>();
  for (let i = 0; i < requested.length; i++) {
    const out = requested[i] as z.infer<typeof requestOutput>;
    if (!known.has(out.name))
      fail(`unknown output ${quote(out.name)}: the model's outputs are ${names(signature.outputs)}`);
    if (seen.has(out.name)) fail(`output ${quote(out.name)} is requested more than once`);
    if (out.parameters?.binary_data === true) {
      fail(`output ${quote(out.name)}: parameters.binary_data: the binary data extension is not supported`);
    }
    seen.add(out.name);
  }
  return [...seen];
}
