/**
 * The checks the structural fast paths share (`inference/request-check.ts` for requests, `package/manifest-fast.ts`
 * for manifests): whether a value is plain data as JSON.parse makes it, read without running any code of the
 * value's own (no getter, no proxy trap).
 */
import { types } from 'node:util';

const OBJECT_PROTOTYPE: unknown = Object.prototype;
const ARRAY_PROTOTYPE: unknown = Array.prototype;
const describe = Object.getOwnPropertyDescriptor;
const isProxy = types.isProxy;

/** Not a proxy, not an array, an object whose prototype is Object.prototype or null. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || isProxy(v) || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === OBJECT_PROTOTYPE || proto === null;
}

/** Not a proxy, an array whose prototype is Array.prototype. */
export function isPlainArray(v: unknown): v is readonly unknown[] {
  return (
    typeof v === 'object' &&
    v !== null &&
    !isProxy(v) &&
    Array.isArray(v) &&
    Object.getPrototypeOf(v) === ARRAY_PROTOTYPE
  );
}

/** An array that is not a proxy (any prototype). */
export function isUnproxiedArray(v: unknown): v is unknown[] {
  return typeof v === 'object' && v !== null && !isProxy(v) && Array.isArray(v);
}

/**
 * The value of `obj[key]` for a key that for...in gave, when it is an own data property and not undefined;
 * otherwise undefined (an inherited enumerable key, a getter or setter, or an explicit undefined).
 */
export function ownValue(obj: object, key: string): unknown {
  const d = describe(obj, key);
  return d === undefined || d.writable === undefined ? undefined : d.value;
}
