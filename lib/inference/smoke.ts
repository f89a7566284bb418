/**
 * The load-time checks that run the model: the manifest's example (smoke test) compared within its tolerance,
 * and a synthetic warm-up request when there is no example.
 *
 * Comparison rules: shapes and datatypes must match exactly; floats pass when |actual - expected| <= absolute +
 * relative * |expected| (NaN matches NaN, ±Infinity matches only itself); integers the same way, except that
 * equal 64-bit decimal strings always match; BOOL and BYTES must be equal.
 */
import { InferenceRequestError } from '../errors.ts';
import type { Example } from '../package/manifest.ts';
import type { ResponseTensor } from './codec.ts';
import type { LoadedModel } from './model.ts';
import { SmokeTestError } from './model-errors.ts';
import { type Signature, type ValidatedRequest, validateRequestLazily } from './request-check.ts';

export type ExpectedTensor = Example['outputs'][number];
export interface Tolerance {
  readonly absolute: number;
  readonly relative: number;
}

/** Runs the manifest's example on the model; throws SmokeTestError naming every mismatch (up to a few). */
export async function smokeTest(model: LoadedModel): Promise<void> {
  const example = model.manifest.example;
  if (!example) return;
  const label = `${model.name}@${model.version}`;
  const outputs = example.outputs.map((o) => ({ name: o.name }));
  let request: ValidatedRequest;
  try {
    request = await validateRequestLazily({ ...exampleRequest(example), outputs }, model.signature, {
      ...model.limits,
      allowEmpty: true,
    });
  } catch (err) {
    if (!(err instanceof InferenceRequestError)) throw err;
    throw new SmokeTestError(`${label}: the manifest's example is not a valid request: ${err.message}`);
  }
  let actual: ResponseTensor[];
  try {
    actual = await model.run(request);
  } catch (err) {
    throw new SmokeTestError(`${label} failed its smoke test: ${(err as Error).message}`, { cause: err });
  }
  const problems = compareOutputs(actual, example.outputs, example.tolerance);
  if (problems.length > 0) {
    const { absolute, relative } = example.tolerance;
    throw new SmokeTestError(
      `${label} failed its smoke test (tolerance ${absolute} + ${relative}·|expected|): ${problems.join('; ')}`,
    );
  }
}

/** Runs one synthetic request (see `warmUpRequest`); returns "ok" or why it failed (never throws). */
export async function warmUp(model: LoadedModel): Promise<string> {
  try {
    const request = await validateRequestLazily(warmUpRequest(model.signature), model.signature, {
      ...model.limits,
      allowEmpty: true,
    });
    await model.run(request);
    return 'ok';
  } catch (err) {
    return `failed: ${(err as Error).message}`;
  }
}

/** The inference request body of a manifest example (validated like any request). */
export function exampleRequest(example: Example): {
  inputs: unknown[];
  parameters?: Record<string, unknown>;
} {
  return {
    inputs: example.request.inputs,
    ...(example.request.parameters ? { parameters: example.request.parameters } : {}),
  };
}

/** The outputs a smoke test compares, in the manifest's order. */
export function exampleOutputNames(example: Example): string[] {
  return example.outputs.map((o) => o.name);
}

const MAX_REPORTED = 3;

/** Compares actual outputs with the example's; returns one line per mismatch (empty when all match). */
export function compareOutputs(
  actual: readonly ResponseTensor[],
  expected: readonly ExpectedTensor[],
  tolerance: Tolerance,
): string[] {
  const problems: string[] = [];
  const byName = new Map(actual.map((t) => [t.name, t]));
  for (const want of expected) {
    const got = byName.get(want.name);
    const where = `output ${JSON.stringify(want.name)}`;
    if (!got) {
      problems.push(`${where} is missing`);
      continue;
    }
    if (got.datatype !== want.datatype) {
      problems.push(`${where} is ${got.datatype}, expected ${want.datatype}`);
      continue;
    }
    if (got.shape.join(',') !== want.shape.join(',')) {
      problems.push(`${where} has shape [${got.shape.join(',')}], expected [${want.shape.join(',')}]`);
      continue;
    }
    const data = (want.data as unknown[]).flat(Number.POSITIVE_INFINITY);
    let bad = 0;
    for (let i = 0; i < data.length; i++) {
      if (elementMatches(got.data[i], data[i], tolerance)) continue;
      if (bad++ < MAX_REPORTED) {
        problems.push(`${where}[${i}] is ${show(got.data[i])}, expected ${show(data[i])}`);
      }
    }
    if (bad > MAX_REPORTED) problems.push(`${where}: ${bad - MAX_REPORTED} more elements differ`);
  }
  return problems;
}

function elementMatches(actual: unknown, expected: unknown, tolerance: Tolerance): boolean {
  if (typeof expected === 'boolean' || typeof actual === 'boolean') return actual === expected;
  if (actual === expected) return true;
  const a = asNumber(actual);
  const e = asNumber(expected);
  if (a === undefined || e === undefined) return false;
  if (Number.isNaN(a) || Number.isNaN(e)) return Number.isNaN(a) && Number.isNaN(e);
  if (!Number.isFinite(a) || !Number.isFinite(e)) return a === e;
  return Math.abs(a - e) <= tolerance.absolute + tolerance.relative * Math.abs(e);
}

/** A JSON number, a decimal string (64-bit integers) or "NaN"/"Infinity"/"-Infinity" as a number. */
function asNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return undefined;
  if (v === 'NaN') return Number.NaN;
  if (v === 'Infinity') return Number.POSITIVE_INFINITY;
  if (v === '-Infinity') return Number.NEGATIVE_INFINITY;
  return /^-?[0-9]+$/.test(v) ? Number(v) : undefined;
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

const ZERO: Record<string, unknown> = { BOOL: false, BYTES: '' };

/**
 * A request that exercises every input once: dynamic dimensions become 1, every element zero (false, "").
 * Used to warm the session up when the manifest has no example.
 */
export function warmUpRequest(signature: Signature): { inputs: unknown[] } {
  return {
    inputs: signature.inputs.map((spec) => {
      const shape = spec.shape.map((d) => (d < 0 ? 1 : d));
      const count = shape.reduce((n, d) => n * d, 1);
      return {
        name: spec.name,
        datatype: spec.datatype,
        shape,
        data: new Array(count).fill(ZERO[spec.datatype] ?? 0),
      };
    }),
  };
}
