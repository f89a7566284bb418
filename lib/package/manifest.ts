import semver from 'semver';
import * as z from 'zod/mini';
import { en } from 'zod/v4/locales';
import { PackageIntegrityError } from '../errors.ts';
import {
  clashingFiles,
  DATATYPES,
  isSafeEntryPath,
  MODEL_PATH,
  NAME_PATTERN,
  parseManifestJson,
} from './manifest-rules.ts';

// zod/mini: the same checks and messages as classic zod at a fraction of the bundle and of the import time. The
// predictor loads this schema only for a manifest the fast path (manifest-fast.ts) cannot vouch for. Mini
// registers no locale by itself: English, unless the application chose one.
if (!z.config().localeError) z.config(en());

export {
  DATATYPES,
  type Datatype,
  isSafeEntryPath,
  MANIFEST_PATH,
  MODEL_PATH,
  NAME_PATTERN,
  SIGNATURE_PATH,
} from './manifest-rules.ts';

const sha256 = z.string().check(z.regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (SHA-256)'));
const int = () => z.number().check(z.int());
const bytes = int().check(z.nonnegative());
const positiveInt = () => int().check(z.positive());
/** zod 4 numbers are finite: Infinity and NaN are refused. */
const finite = () => z.number();
const nonNegative = () => z.number().check(z.nonnegative());
const stringRecord = () => z.record(z.string(), z.unknown());

/** A relative POSIX path inside a package: no absolute paths, no `..`, no empty or odd segments. */
export const entryPath = z.string().check(
  z.minLength(1),
  z.maxLength(255),
  z.refine(
    (p) => isSafeEntryPath(p),
    'must be a relative path of letters, digits, ".", "_" and "-" segments (no "..", no empty segments, max 100 bytes)',
  ),
);

export const tensorSpec = z.strictObject({
  name: z.string().check(z.minLength(1)),
  datatype: z.enum(DATATYPES),
  shape: z.array(int().check(z.minimum(-1))),
});
export type TensorSpec = z.infer<typeof tensorSpec>;

/** An Open Inference Protocol tensor with data, as in a request or response. */
export const tensorData = z.strictObject({
  name: z.string().check(z.minLength(1)),
  datatype: z.enum(DATATYPES),
  shape: z.array(int().check(z.nonnegative())),
  data: z.array(z.unknown()),
  parameters: z.optional(stringRecord()),
});

const semverString = z
  .string()
  .check(z.refine((v) => semver.valid(v) === v, 'must be a semantic version such as 1.4.0'));
const semverRange = z
  .string()
  .check(z.refine((v) => semver.validRange(v) !== null, 'must be a semver range such as >=1.17'));

export const exampleSchema = z.strictObject({
  request: z.strictObject({
    inputs: z.array(tensorData).check(z.minLength(1)),
    parameters: z.optional(stringRecord()),
  }),
  outputs: z.array(tensorData).check(z.minLength(1)),
  tolerance: z._default(
    z.strictObject({
      absolute: z._default(nonNegative(), 1e-5),
      relative: z._default(nonNegative(), 1e-4),
    }),
    { absolute: 1e-5, relative: 1e-4 },
  ),
});
export type Example = z.infer<typeof exampleSchema>;

const featureStats = z.strictObject({
  count: bytes,
  mean: finite(),
  std: nonNegative(),
  min: finite(),
  max: finite(),
  histogram: z.optional(
    z
      .strictObject({ edges: z.array(finite()).check(z.minLength(2)), counts: z.array(bytes) })
      .check(
        z.refine(
          (h) => h.counts.length === h.edges.length - 1,
          'histogram needs one count per bin (edges - 1)',
        ),
      ),
  ),
});

const isoDateTime = () => z.iso.datetime({ offset: true });

export const lineageSchema = z.strictObject({
  gitCommit: z.optional(z.string()),
  gitDirty: z.optional(z.boolean()),
  command: z.optional(z.string()),
  params: z.optional(stringRecord()),
  dataset: z.optional(z.strictObject({ uri: z.string(), sha256: z.optional(sha256) })),
  image: z.optional(z.string()),
  startedAt: z.optional(isoDateTime()),
  finishedAt: z.optional(isoDateTime()),
  host: z.optional(z.string()),
  maap: z.optional(z.string()),
});
export type Lineage = z.infer<typeof lineageSchema>;

export const manifestSchema = z
  .strictObject({
    schemaVersion: z.literal(1),
    name: z.string().check(z.regex(NAME_PATTERN, 'must match [a-z0-9][a-z0-9-]{0,62}')),
    version: semverString,
    createdAt: isoDateTime(),
    model: z.strictObject({
      path: z.literal(MODEL_PATH),
      sha256,
      bytes,
      opset: positiveInt(),
      irVersion: positiveInt(),
      producer: z.string(),
      domains: z.optional(z.record(z.string(), positiveInt())),
    }),
    signature: z.strictObject({
      inputs: z.array(tensorSpec).check(z.minLength(1)),
      outputs: z.array(tensorSpec).check(z.minLength(1)),
    }),
    files: z.array(z.strictObject({ path: entryPath, sha256, bytes })),
    requires: z.strictObject({
      onnxruntime: semverRange,
      opset: positiveInt(),
      memoryMb: z.optional(positiveInt()),
    }),
    example: z.optional(exampleSchema),
    metrics: z._default(z.record(z.string(), finite()), {}),
    lineage: z._default(lineageSchema, {}),
    labels: z.optional(z.array(z.string())),
    stats: z.optional(z.record(z.string(), featureStats)),
  })
  .check(
    z.superRefine((m, ctx) => {
      for (const i of clashingFiles(m.files, m.model.path)) {
        ctx.addIssue({
          code: 'custom',
          path: ['files', i, 'path'],
          message: `"${(m.files[i] as { path: string }).path}" is reserved, listed twice (ignoring case), or also a folder of another path`,
        });
      }
    }),
  );
export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestInput = z.input<typeof manifestSchema>;

/** Formats a zod error as "field.path: problem; ..." for a person. */
export function formatIssues(error: z.core.$ZodError): string {
  return error.issues
    .slice(0, 8)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** Validates a parsed manifest; throws PackageIntegrityError naming every bad field. */
export function parseManifest(value: unknown): Manifest {
  // Parsed once per package: zod's JIT (code it generates at a schema's first parse) buys nothing here.
  const result = manifestSchema.safeParse(value, { jitless: true });
  if (!result.success) throw new PackageIntegrityError(`invalid manifest: ${formatIssues(result.error)}`);
  return result.data;
}

/** Parses and validates the raw bytes of maap.json. */
export function decodeManifest(raw: Uint8Array): Manifest {
  return parseManifest(parseManifestJson(raw));
}

/** The canonical bytes of a manifest as written into a package (stable key order, trailing newline). */
export function encodeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
}
