import { describe, expect, it } from 'vitest';
import { PackageIntegrityError } from '../../lib/errors.ts';
import { parseManifest } from '../../lib/package/manifest.ts';

/** A valid manifest (as pack writes it), to mutate. */
function manifest(): Record<string, unknown> & { model: Record<string, unknown>; files: unknown[] } {
  return {
    schemaVersion: 1,
    name: 'mlp',
    version: '1.0.0',
    createdAt: '2026-01-02T03:04:05.678Z',
    model: {
      path: 'model.onnx',
      sha256: 'a'.repeat(64),
      bytes: 284,
      opset: 17,
      irVersion: 8,
      producer: 'maap-fixtures 1.0.0',
    },
    signature: {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
    },
    files: [],
    requires: { onnxruntime: '>=1.17', opset: 17 },
  };
}

function refusal(value: unknown): string {
  try {
    parseManifest(value);
  } catch (err) {
    expect(err).toBeInstanceOf(PackageIntegrityError);
    return (err as Error).message;
  }
  throw new Error('expected parseManifest to throw');
}

// This file imports the manifest schema alone (no classic zod anywhere in its module graph): the English messages
// must come from the manifest module itself, as in the Lambda bundle.
describe('parseManifest names every bad field, in English', () => {
  it('accepts a valid manifest and fills the defaults', () => {
    const parsed = parseManifest(manifest());
    expect(parsed.metrics).toEqual({});
    expect(parsed.lineage).toEqual({});
  });

  it.each<[string, (m: ReturnType<typeof manifest>) => unknown, string]>([
    ['unknown top-level field', (m) => ({ ...m, owner: 'mallory' }), '(root): Unrecognized key: "owner"'],
    [
      'unknown nested field',
      (m) => ({ ...m, model: { ...m.model, url: 'http://x' } }),
      'model: Unrecognized key: "url"',
    ],
    ['bad name', (m) => ({ ...m, name: 'Fraud_Model' }), 'name: must match [a-z0-9][a-z0-9-]{0,62}'],
    ['bad version', (m) => ({ ...m, version: '1.0' }), 'version: must be a semantic version such as 1.4.0'],
    [
      'bad digest',
      (m) => ({ ...m, model: { ...m.model, sha256: 'ABC' } }),
      'model.sha256: must be 64 lowercase hex digits (SHA-256)',
    ],
    [
      'negative size',
      (m) => ({ ...m, model: { ...m.model, bytes: -1 } }),
      'model.bytes: Too small: expected number to be >=0',
    ],
    [
      'wrong type',
      (m) => ({ ...m, createdAt: 5 }),
      'createdAt: Invalid input: expected string, received number',
    ],
    [
      'a file listed twice',
      (m) => ({
        ...m,
        files: [
          { path: 'a.txt', sha256: 'b'.repeat(64), bytes: 1 },
          { path: 'a.txt', sha256: 'b'.repeat(64), bytes: 1 },
        ],
      }),
      'files.1.path: "a.txt" is reserved, listed twice (ignoring case), or also a folder of another path',
    ],
    [
      'an unsafe file path',
      (m) => ({ ...m, files: [{ path: '../x', sha256: 'b'.repeat(64), bytes: 1 }] }),
      'files.0.path: must be a relative path of letters, digits, ".", "_" and "-" segments (no "..", no empty segments, max 100 bytes)',
    ],
    [
      'two files that differ only in case',
      (m) => ({
        ...m,
        files: [
          { path: 'Vocab.txt', sha256: 'b'.repeat(64), bytes: 1 },
          { path: 'vocab.txt', sha256: 'b'.repeat(64), bytes: 1 },
        ],
      }),
      'files.1.path: "vocab.txt" is reserved, listed twice (ignoring case), or also a folder of another path',
    ],
    [
      'a file that is also a folder of another file',
      (m) => ({
        ...m,
        files: [
          { path: 'a/b', sha256: 'b'.repeat(64), bytes: 1 },
          { path: 'a', sha256: 'b'.repeat(64), bytes: 1 },
        ],
      }),
      'files.1.path: "a" is reserved, listed twice (ignoring case), or also a folder of another path',
    ],
    [
      'a Windows device name',
      (m) => ({ ...m, files: [{ path: 'nul.txt', sha256: 'b'.repeat(64), bytes: 1 }] }),
      'files.0.path: must be a relative path of letters, digits, ".", "_" and "-" segments (no "..", no empty segments, max 100 bytes)',
    ],
  ])('%s', (_, mutate, message) => {
    expect(refusal(mutate(manifest()))).toBe(`invalid manifest: ${message}`);
  });
});
