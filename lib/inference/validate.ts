/**
 * Validation of a whole Open Inference Protocol inference request against a model's signature, before the
 * session runs. Every problem is an InferenceRequestError (HTTP 400) whose message names the field or input.
 *
 * Decisions: request, input and output objects are strict (an unknown field is refused, so a typo such as
 * `"output"` or `"contents"` does not pass silently); parameter values are strings, numbers or booleans as the
 * protocol defines them; the binary data extension is refused by name; an `outputs` list that is omitted or
 * empty means every output of the model; a name listed twice (input or output) is refused.
 */
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

const inferenceRequest = z.strictObject(
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
 * `limits.maxElements` bounds the elements of all inputs together.
 */
export function validateRequest(
  body: unknown,
  signature: Signature,
  limits: DecodeLimits = {},
): ValidatedRequest {
  const parsed = inferenceRequest.safeParse(body);
  if (!parsed.success) fail(formatZodError(parsed.error));
  const request = parsed.data;

  if (request.parameters && request.parameters.binary_data_output === true) {
    fail('parameters.binary_data_output: the binary data extension is not supported; responses are JSON');
  }
  const outputs = outputNames(request.outputs ?? [], signature);
  const specs = new Map(signature.inputs.map((s) => [s.name, s]));
  const feeds: Record<string, ort.Tensor> = Object.create(null);
  let used = 0;
  for (const input of request.inputs) {
    const spec = specs.get(input.name);
    if (!spec) fail(`unknown input ${quote(input.name)}: the model's inputs are ${names(signature.inputs)}`);
    if (Object.hasOwn(feeds, input.name)) fail(`input ${quote(input.name)} is given more than once`);
    const tensor = decodeInput(input, spec, limits, used);
    used += tensor.size;
    feeds[input.name] = tensor;
  }
  const missing = signature.inputs.filter((s) => !Object.hasOwn(feeds, s.name));
  if (missing.length > 0) {
    const list = missing.map((s) => `${quote(s.name)} (${s.datatype} [${s.shape.join(',')}])`).join(', ');
    fail(`missing input${missing.length > 1 ? 's' : ''} ${list}`);
  }

  return {
    feeds,
    outputNames: outputs,
    ...(request.id !== undefined ? { id: request.id } : {}),
    batchSize: request.inputs[0]?.shape[0] ?? 1,
  };
}

function outputNames(requested: readonly z.infer<typeof requestOutput>[], signature: Signature): string[] {
  if (requested.length === 0) return signature.outputs.map((s) => s.name);
  const known = new Set(signature.outputs.map((s) => s.name));
  const seen = new Set<string>();
  for (const out of requested) {
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
