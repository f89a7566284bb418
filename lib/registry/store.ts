import type { Readable } from 'node:stream';
import { UsageError } from '../errors.ts';

/**
 * The low-level object store a registry sits on: a flat namespace of `/`-separated keys relative to the
 * registry root. Two implementations share this contract: a local folder (`FileStore`) and S3 (`S3Store`).
 *
 * Guarantees every implementation gives:
 * - `putIfAbsent` is all-or-nothing: a failed or interrupted upload never leaves a visible object, and an
 *   existing object is never replaced (the call returns `false` instead).
 * - `put` replaces an object atomically (readers see the old or the new bytes, never a mix).
 * - `list` never shows temporary or partial objects.
 */
export interface Store {
  /** Where the store lives, for messages: an absolute folder path or `s3://bucket/prefix`. */
  readonly uri: string;
  /** Streams an object, or the inclusive byte range `[start, end]` of it. Throws NotFoundError when absent. */
  get(key: string, options?: GetOptions): Promise<Readable>;
  /** Size and modification time of an object, or `undefined` when absent. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /**
   * Writes an object from a stream unless the key exists. Resolves `true` when written, `false` when the key
   * already held an object (nothing changed). Rejects, leaving nothing visible, when `body` errors or the
   * transfer fails.
   */
  putIfAbsent(key: string, body: Readable, options?: PutOptions): Promise<boolean>;
  /** Writes (or replaces) a small object, atomically. */
  put(key: string, body: Uint8Array | string, options?: { contentType?: string }): Promise<void>;
  /** Every object whose key starts with `prefix`, recursively, sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Removes an object; removing an absent object is not an error. */
  delete(key: string): Promise<void>;
  /** Releases connections and other resources. */
  close(): Promise<void>;
}

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  readonly mtime: Date;
}

export interface GetOptions {
  /** Inclusive byte range; `end` past the object's end is clamped, as HTTP ranges are. */
  readonly range?: { readonly start: number; readonly end?: number };
}

export interface PutOptions {
  /** Called as bytes go out, with the number transferred so far. */
  readonly onProgress?: (transferred: number) => void;
  readonly contentType?: string;
}

/** Refuses keys that could escape the root or collide with temporary files: the store's own sanity check. */
export function checkKey(key: string): string {
  const segments = key.split('/');
  if (
    key.length === 0 ||
    key.length > 1024 ||
    key.includes('\\') ||
    key.includes('\0') ||
    segments.some((s) => s === '' || s === '.' || s === '..' || s.startsWith('.'))
  ) {
    throw new UsageError(`invalid registry key "${key}"`);
  }
  return key;
}

/** Whether a key names a hidden (temporary) object that listings must not show. */
export function isHiddenKey(key: string): boolean {
  return key.split('/').some((s) => s.startsWith('.'));
}
