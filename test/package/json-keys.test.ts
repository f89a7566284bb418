import { describe, expect, it } from 'vitest';
import { PackageIntegrityError } from '../../lib/errors.ts';
import { assertNoDuplicateKeys } from '../../lib/package/json-keys.ts';

describe('assertNoDuplicateKeys', () => {
  it('accepts JSON without duplicate keys, the same key in different objects, and keys inside strings', () => {
    const text = JSON.stringify({
      a: { x: 1 },
      b: { x: 2 },
      c: [{ x: 1 }, { x: 2 }],
      d: '{"a": 1, "a": 2}',
      e: 'q\\"a',
    });
    expect(() => assertNoDuplicateKeys(text, 'maap.json')).not.toThrow();
  });

  it.each([
    ['{"version": "1.0.0", "version": "9.9.9"}', 'version'],
    ['{"model": {"sha256": "a", "sha256": "b"}}', 'sha256'],
    ['{"files": [{"path": "a"}, {"path": "b", "path": "c"}]}', 'path'],
    ['{"a\\u0062": 1, "ab": 2}', 'ab'],
  ])('refuses %s', (text, key) => {
    expect(() => assertNoDuplicateKeys(text, 'maap.json')).toThrow(PackageIntegrityError);
    expect(() => assertNoDuplicateKeys(text, 'maap.json')).toThrow(`maap.json names the key "${key}" twice`);
  });
});
