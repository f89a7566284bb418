/**
 * The app's router: hono's PatternRouter, with its answers kept per method and path.
 *
 * PatternRouter is cheap to start (its first match costs ~0.2 ms, where the default router compiles every route
 * into one expression on the first request: ~2.4 ms of a Lambda cold start), but each match runs the regular
 * expression of every route (the app has 10, all `ALL`): ~2,100 instructions a request on the Node server,
 * measured with callgrind. Traffic goes to a handful of paths (the model's infer path, the health checks), so the
 * answer for a path is kept and reused: a match is then two map lookups.
 *
 * hono only reads a match result (the handlers and the route parameters), so one result can serve every request
 * on its path. Paths are the caller's, so what is kept is bounded: only paths up to `MEMO_PATH_LENGTH` characters
 * (a model's paths are far shorter: names have at most 63 characters; longer paths are matched every time), at
 * most `capacity` of them, and the whole memory is dropped when it is full: at most ~0.5 MB of paths, and a caller
 * sending endless distinct paths gets PatternRouter's own cost.
 */
import type { Result, Router } from 'hono/router';
import { PatternRouter } from 'hono/router/pattern-router';

/** How many (method, path) answers are kept at most. */
export const ROUTE_MEMORY = 1024;
/** The longest path whose answer is kept. */
export const MEMO_PATH_LENGTH = 256;

export class MemoRouter<T> implements Router<T> {
  readonly name = 'MemoRouter';
  readonly #router = new PatternRouter<T>();
  /** Answers by method, then by path. */
  readonly #answers = new Map<string, Map<string, Result<T>>>();
  #size = 0;

  constructor(private readonly capacity: number = ROUTE_MEMORY) {}

  add(method: string, path: string, handler: T): void {
    this.#forget();
    this.#router.add(method, path, handler);
  }

  match(method: string, path: string): Result<T> {
    let byPath = this.#answers.get(method);
    const known = byPath?.get(path);
    if (known !== undefined) return known;
    const answer = this.#router.match(method, path);
    if (path.length > MEMO_PATH_LENGTH) return answer;
    if (this.#size >= this.capacity) {
      this.#forget();
      byPath = undefined;
    }
    if (byPath === undefined) {
      byPath = new Map();
      this.#answers.set(method, byPath);
    }
    byPath.set(path, answer);
    this.#size++;
    return answer;
  }

  /** How many answers are kept (tests). */
  get size(): number {
    return this.#size;
  }

  #forget(): void {
    this.#answers.clear();
    this.#size = 0;
  }
}
