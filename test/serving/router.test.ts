/**
 * The app's router (lib/serving/router.ts): hono's PatternRouter with its answers kept per method and path. It
 * must answer exactly what PatternRouter answers, reuse an answer for a path it has seen, keep no more than its
 * capacity, and forget everything when a route is added.
 */
import { PatternRouter } from 'hono/router/pattern-router';
import { describe, expect, it } from 'vitest';
import { MEMO_PATH_LENGTH, MemoRouter } from '../../lib/serving/router.ts';

const ROUTES: [string, string][] = [
  ['ALL', '/v2/health/live'],
  ['ALL', '/v2/models/:name'],
  ['ALL', '/v2/models/:name/versions/:version'],
  ['ALL', '/v2/models/:name/infer'],
  ['ALL', '/v2/models/:name/versions/:version/infer'],
  ['GET', '/v2/only-get'],
];

function both(capacity?: number): { memo: MemoRouter<string>; plain: PatternRouter<string> } {
  const memo = new MemoRouter<string>(capacity);
  const plain = new PatternRouter<string>();
  for (const [method, path] of ROUTES) {
    memo.add(method, path, `${method} ${path}`);
    plain.add(method, path, `${method} ${path}`);
  }
  return { memo, plain };
}

const PATHS = [
  '/v2/health/live',
  '/v2/health/live/',
  '/v2/models/fraud',
  '/v2/models/fraud/versions/1.4.0',
  '/v2/models/fraud/infer',
  '/v2/models/fraud/versions/1.4.0/infer',
  '/v2/models/a.b-c/infer',
  '/v2/only-get',
  '/v2/nothing/here',
  '/',
];

describe('MemoRouter', () => {
  it.each(['GET', 'POST', 'PUT'])('answers %s requests exactly as PatternRouter does', (method) => {
    const { memo, plain } = both();
    for (const path of PATHS) {
      expect(memo.match(method, path), `${method} ${path}`).toEqual(plain.match(method, path));
      // The second time from memory, still the same answer.
      expect(memo.match(method, path), `${method} ${path} again`).toEqual(plain.match(method, path));
    }
  });

  it('reuses the answer for a path it has seen, per method', () => {
    const { memo } = both();
    const first = memo.match('POST', '/v2/models/fraud/infer');
    expect(memo.match('POST', '/v2/models/fraud/infer')).toBe(first);
    expect(memo.match('GET', '/v2/models/fraud/infer')).not.toBe(first);
    expect(memo.match('POST', '/v2/models/other/infer')).not.toBe(first);
    expect(memo.size).toBe(3);
  });

  it('keeps at most its capacity of answers and stays correct past it', () => {
    const { memo, plain } = both(8);
    for (let i = 0; i < 50; i++) {
      const path = `/v2/models/m${i}/infer`;
      expect(memo.match('POST', path)).toEqual(plain.match('POST', path));
      expect(memo.size).toBeLessThanOrEqual(8);
    }
    expect(memo.match('POST', '/v2/models/m49/infer')).toEqual(plain.match('POST', '/v2/models/m49/infer'));
  });

  it('does not keep the answer for a path longer than MEMO_PATH_LENGTH, and still answers it right', () => {
    const { memo, plain } = both();
    const long = `/v2/models/${'m'.repeat(MEMO_PATH_LENGTH)}/infer`;
    expect(memo.match('POST', long)).toEqual(plain.match('POST', long));
    expect(memo.size).toBe(0);
    const edge = `/v2/models/${'m'.repeat(MEMO_PATH_LENGTH - '/v2/models//infer'.length)}/infer`;
    expect(edge.length).toBe(MEMO_PATH_LENGTH);
    memo.match('POST', edge);
    expect(memo.size).toBe(1);
  });

  it('forgets what it knew when a route is added', () => {
    const { memo } = both();
    expect(memo.match('GET', '/v2/late')).toEqual([[]]);
    memo.add('GET', '/v2/late', 'late');
    expect(memo.size).toBe(0);
    expect(memo.match('GET', '/v2/late')).toEqual([[['late', {}]]]);
  });
});
