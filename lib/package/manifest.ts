import semver from 'semver';
import { z } from 'zod';
import { PackageIntegrityError } from '../errors.ts';

/** Open Inference Protocol datatypes that a manifest signature can name. */
export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'BF16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

/** File name of the manifest: always the first entry of a package. */
export const MANIFEST_PATH = 'maap.json';
/** File name of the detached Ed25519 signature over the manifest bytes: always the last entry when present. */
export const SIGNATURE_PATH = 'maap.sig';
export const MODEL_PATH = 'model.onnx';

export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (SHA-256)');
const bytes = z.number().int().nonnegative();
const finite = z.number().finite();

/** A relative POSIX path inside a package: no absolute paths, no `..`, no empty or odd segments. */
export const entryPath = z
  .string()
  .min(1)
  .max(255)
  .refine((p) => isSafeEntryPath(p), 'must be a relative path without "..", "." or empty segments');

export function isSafeEntryPath(p: string): boolean {
  if (p.length === 0 || p.length > 255 || p.startsWith('/') || p.includes('\\') || p.includes('\0'))
    return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

export const tensorSpec = z
  .object({
    name: z.string().min(1),
    datatype: z.enum(DATATYPES),
    shape: z.array(z.number().int().min(-1)),
  })
  .strict();
export type TensorSpec = z.infer<typeof tensorSpec>;

/** An Open Inference Protocol tensor with data, as in a request or response. */
export const tensorData = z
  .object({
    name: z.string().min(1),
    datatype: z.enum(DATATYPES),
    shape: z.array(z.number().int().nonnegative()),
    data: z.array(z.unknown()),
    parameters: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const semverString = z
  .string()
  .refine((v) => semver.valid(v) === v, 'must be a semantic version such as 1.4.0');
const semverRange = z
  .string()
  .refine((v) => semver.validRange(v) !== null, 'must be a semver range such as >=1.17');

export const exampleSchema = z
  .object({
    request: z
      .object({
        inputs: z.array(tensorData).min(1),
        parameters: z.record(z.string(), z.unknown()).optional(),
      })
      .strict(),
    outputs: z.array(tensorData).min(1),
    tolerance: z
      .object({ absolute: finite.nonnegative().default(1e-5), relative: finite.nonnegative().default(1e-4) })
      .strict()
      .default({ absolute: 1e-5, relative: 1e-4 }),
  })
  .strict();
export type Example = z.infer<typeof exampleSchema>;

const featureStats = z
  .object({
    count: bytes,
    mean: finite,
    std: finite.nonnegative(),
    min: finite,
    max: finite,
    histogram: z
      .object({ edges: z.array(finite).min(2), counts: z.array(bytes) })
      .strict()
      .refine((h) => h.counts.length === h.edges.length - 1, 'histogram needs one count per bin (edges - 1)')
      .optional(),
  })
  .strict();

export const lineageSchema = z
  .object({
    gitCommit: z.string().optional(),
    gitDirty: z.boolean().optional(),
    command: z.string().optional(),
    params: z.record(z.string(), z.unknown()).optional(),
    dataset: z.object({ uri: z.string(), sha256: sha256.optional() }).strict().optional(),
    image: z.string().optional(),
    startedAt: z.iso.datetime({ offset: true }).optional(),
    finishedAt: z.iso.datetime({ offset: true }).optional(),
    host: z.string().optional(),
    maap: z.string().optional(),
  })
  .strict();
export type Lineage = z.infer<typeof lineageSchema>;

export const manifestSchema = z
  .object({
    schemaVersion: z.literal(1),
    name: z.string().regex(NAME_PATTERN, 'must match [a-z0-9][a-z0-9-]{0,62}'),
    version: semverString,
    createdAt: z.iso.datetime({ offset: true }),
    model: z
      .object({
        path: z.literal(MODEL_PATH),
        sha256,
        bytes,
        opset: z.number().int().positive(),
        irVersion: z.number().int().positive(),
        producer: z.string(),
        domains: z.record(z.string(), z.number().int().positive()).optional(),
      })
      .strict(),
    signature: z.object({ inputs: z.array(tensorSpec).min(1), outputs: z.array(tensorSpec).min(1) }).strict(),
    files: z.array(z.object({ path: entryPath, sha256, bytes }).strict()),
    requires: z
      .object({
        onnxruntime: semverRange,
        opset: z.number().int().positive(),
        memoryMb: z.number().int().positive().optional(),
      })
      .strict(),
    example: exampleSchema.optional(),
    metrics: z.record(z.string(), finite).default({}),
    lineage: lineageSchema.default({}),
    labels: z.array(z.string()).optional(),
    stats: z.record(z.string(), featureStats).optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const seen = new Set<string>([MANIFEST_PATH, SIGNATURE_PATH, m.model.path]);
    for (const [i, f] of m.files.entries()) {
      if (seen.has(f.path))
        ctx.addIssue({
          code: 'custom',
          path: ['files', i, 'path'],
          message: `"${f.path}" is reserved or listed twice`,
        });
      seen.add(f.path);
    }
  });
export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestInput = z.input<typeof manifestSchema>;

/** Formats a zod error as "field.path: problem; ..." for a person. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 8)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** Validates a parsed manifest; throws PackageIntegrityError naming every bad field. */
export function parseManifest(value: unknown): Manifest {
  const result = manifestSchema.safeParse(value);
  if (!result.success) throw new PackageIntegrityError(`invalid manifest: ${formatIssues(result.error)}`);
  return result.data;
}

/** Parses and validates the raw bytes of maap.json. */
export function decodeManifest(raw: Uint8Array): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (err) {
    throw new PackageIntegrityError(
      `invalid manifest: maap.json is not valid UTF-8 JSON (${(err as Error).message})`,
    );
  }
  return parseManifest(value);
}

/** The canonical bytes of a manifest as written into a package (stable key order, trailing newline). */
export function encodeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
}
