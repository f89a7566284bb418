/**
 * The request checks of `validate.ts` that need no schema library: the structural fast path
 * (`isWellFormedRequest`), the checks against the model's signature and the decoding of the inputs
 * (`checkRequest`). The predictor validates with `validateRequestLazily`: a well-formed request never loads zod;
 * anything else loads `validate.ts` (zod), which names the problem. Keeping zod off the start path saves a Lambda
 * cold start its import.
 */
import type * as ort from 'onnxruntime-node';
import { InferenceRequestError } from '../errors.ts';
import type { TensorSpec } from '../package/manifest.ts';
import { isDatatype } from '../package/manifest-rules.ts';
import { isPlainArray, isPlainObject, isUnproxiedArray, ownValue } from '../plain-data.ts';
import { type DecodeLimits, decodeInput } from './codec.ts';
// Type only (erased): the schema's output type, without loading zod.
import type { InferenceRequestJson } from './validate.ts';

export type { InferenceRequestJson };

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
 * strict objects and of arrays (zod ignores them; so does checkRequest), and non-index properties or accessor
 * elements of arrays (zod's copy would drop them; an own `join`, `slice` or `entries` on a shape array would be
 * what decodeInput calls on the fast path).
 */
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
    else if (key === 'datatype' && isDatatype(value)) seen |= DATATYPE;
    // `data`: zod checks Array.isArray and passes the array on as it is; a proxy is left to zod all the same.
    else if (key === 'data' && isUnproxiedArray(value)) seen |= DATA;
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

function fail(message: string): never {
  throw new InferenceRequestError(message);
}
const quote = (s: string): string => JSON.stringify(s);
const names = (specs: readonly TensorSpec[]): string => specs.map((s) => quote(s.name)).join(', ');

/**
 * Validates an inference request body (parsed JSON) against the model signature and decodes its inputs, without
 * loading zod: the body is checked by `isWellFormedRequest`, else `validate.ts` is loaded and zod decides and names
 * the problem. A well-formed body is answered synchronously, and then a problem found against the signature is
 * thrown, not rejected: call it inside an async function (or a try) and await the result.
 */
export function validateRequestLazily(
  body: unknown,
  signature: Signature,
  limits: DecodeLimits = {},
): ValidatedRequest | Promise<ValidatedRequest> {
  if (isWellFormedRequest(body)) return checkRequest(body, signature, limits);
  return import('./validate.ts').then((schema) => schema.validateWithSchema(body, signature, limits));
}

/**
 * The checks after the schema: the binary data extension refused, inputs known to the signature, each given once
 * and none missing, outputs known and not repeated; then each input decoded into a tensor (`limits.maxElements`
 * bounds the elements of all inputs together).
 */
export function checkRequest(
  request: InferenceRequestJson,
  signature: Signature,
  limits: DecodeLimits = {},
): ValidatedRequest {
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

function outputNames(
  requested: readonly NonNullable<InferenceRequestJson['outputs']>[number][],
  signature: Signature,
): string[] {
  if (requested.length === 0) return signature.outputs.map((s) => s.name);
  const known = new Set(signature.outputs.map((s) => s.name));
  const seen = new Set<string>();
  for (let i = 0; i < requested.length; i++) {
    const out = requested[i] as NonNullable<InferenceRequestJson['outputs']>[number];
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
