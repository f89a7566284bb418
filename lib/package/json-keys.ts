import { PackageIntegrityError } from '../errors.ts';

/**
 * Refuses JSON text in which an object names the same key twice. JSON.parse keeps the last occurrence, other
 * parsers keep the first: a manifest with duplicate keys would read differently in different tools while its
 * signature, which covers the bytes, still verifies. Runs in one pass over text that JSON.parse accepts.
 */
export function assertNoDuplicateKeys(text: string, what: string): void {
  // One entry per open container: the keys of an object, or null for an array.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      const keys = stack[stack.length - 1];
      if (expectKey && keys) {
        const key = JSON.parse(text.slice(start, i + 1)) as string;
        if (keys.has(key))
          throw new PackageIntegrityError(`${what} names the key "${key}" twice in one object`);
        keys.add(key);
      }
      expectKey = false;
    } else if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
}
