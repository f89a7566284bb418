/**
 * Validation of a whole Open Inference Protocol inference request against a model's signature, before the
 * session runs. Every problem is an InferenceRequestError (HTTP 400) whose message names the field or input.
 *
 * Decisions: request, input and output objects are strict (an unknown field is refused, so a typo such as
 * `"output"` or `"contents"` does not pass silently); parameter values are strings, numbers or booleans as the
 * protocol defines them; the binary data extension is refused by name; an `outputs` list that is omitted or
 * empty means every output of the model; a name listed twice (input or output) is refused.
 */
import * as z from 'zod/mini';
import { InferenceRequestError } from '../errors.ts';
import { DATATYPES } from '../package/manifest-rules.ts';
import type { DecodeLimits } from './codec.ts';
import { checkRequest, isWellFormedRequest, type Signature, type ValidatedRequest } from './request-check.ts';

export {
  checkRequest,
  isWellFormedRequest,
  type Signature,
  type ValidatedRequest,
  validateRequestLazily,
} from './request-check.ts';

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
    .array(z.number({ error: 'must be a number' }).check(z.int('must be an integer (of at most 2^53 - 1)')), {
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

/**
 * Validates an inference request body (parsed JSON) against the model signature and decodes its inputs.
 * `limits.maxElements` bounds the elements of all inputs together. The schema check is `isWellFormedRequest`
 * when it vouches for the body, else zod (which names the problem). The predictor calls `validateRequestLazily`,
 * which loads this module (and zod) only for a body the fast path cannot vouch for.
 */
export function validateRequest(
  body: unknown,
  signature: Signature,
  limits: DecodeLimits = {},
): ValidatedRequest {
  return checkRequest(isWellFormedRequest(body) ? body : parseWithZod(body), signature, limits);
}

/** `validateRequest` for a body the fast path could not vouch for (`validateRequestLazily`): zod, then the checks. */
export function validateWithSchema(
  body: unknown,
  signature: Signature,
  limits: DecodeLimits = {},
): ValidatedRequest {
  return checkRequest(parseWithZod(body), signature, limits);
}

function parseWithZod(body: unknown): InferenceRequestJson {
  const parsed = inferenceRequest.safeParse(body);
  if (!parsed.success) throw new InferenceRequestError(formatZodError(parsed.error));
  return parsed.data;
}
