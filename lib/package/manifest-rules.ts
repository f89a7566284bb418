/**
 * The manifest's names and path rules, free of dependencies: the package reader on the predictor's cold start
 * (`manifest-fast.ts`, `checker.ts`) and the request validator use them without loading the manifest schema (zod
 * and semver), which applies the same rules. `manifest.ts` re-exports them.
 */
import { PackageIntegrityError } from '../errors.ts';
import { MODEL_NAME_PATTERN } from './names.ts';

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

/** The largest maap.json a reader accepts. */
export const DEFAULT_MAX_MANIFEST_BYTES = 1024 * 1024;

/** A model name (the rule lives in `names.ts`, which the CDK constructs use without the schema). */
export const NAME_PATTERN = MODEL_NAME_PATTERN;

/**
 * A path inside a package: portable segments (`[A-Za-z0-9._-]`, not `.` or `..`, no Windows device names)
 * joined by `/`, at most 100 bytes so that it fits a plain ustar header on every platform's file system.
 */
export function isSafeEntryPath(p: string): boolean {
  if (p.length === 0 || p.length > 100) return false;
  return p
    .split('/')
    .every(
      (seg) => /^[A-Za-z0-9._-]+$/.test(seg) && seg !== '.' && seg !== '..' && !WINDOWS_DEVICE.test(seg),
    );
}
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

/** Whether `v` is one of the manifest's datatypes. */
export function isDatatype(v: unknown): v is Datatype {
  return DATATYPE_SET.has(v);
}
const DATATYPE_SET: ReadonlySet<unknown> = new Set(DATATYPES);

/**
 * The indexes in `files` of the paths that clash, compared as a case-insensitive file system sees them: a reserved
 * name (the manifest, the signature, the model), a path listed twice, a file that is also a folder of another
 * (each would overwrite or block another when extracted).
 */
export function clashingFiles(files: readonly { readonly path: string }[], modelPath: string): number[] {
  const fold = (p: string) => p.toLowerCase();
  const seen = new Set<string>([MANIFEST_PATH, SIGNATURE_PATH, modelPath].map(fold));
  const folders = new Set<string>();
  for (const f of files) {
    const parts = fold(f.path).split('/');
    for (let n = 1; n < parts.length; n++) folders.add(parts.slice(0, n).join('/'));
  }
  const clashes: number[] = [];
  for (let i = 0; i < files.length; i++) {
    const path = fold((files[i] as { path: string }).path);
    if (seen.has(path) || folders.has(path)) clashes.push(i);
    seen.add(path);
  }
  return clashes;
}

/** The JSON value of maap.json's bytes; PackageIntegrityError when they are not UTF-8 JSON. */
export function parseManifestJson(raw: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (err) {
    throw new PackageIntegrityError(
      `invalid manifest: maap.json is not valid UTF-8 JSON (${(err as Error).message})`,
    );
  }
}
