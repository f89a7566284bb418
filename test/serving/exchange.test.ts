/**
 * The LiteRequest the adapters hand the app: it routes on its target without building a URL, and must route
 * exactly where hono's own getPath would take the full URL.
 */
import { getPath } from 'hono/utils/url';
import { describe, expect, it } from 'vitest';
import { LiteRequest, REQUEST_SOURCE, type RequestSource } from '../../lib/serving/exchange.ts';

const source: RequestSource = {
  [REQUEST_SOURCE]: true,
  header: () => undefined,
  headerEntries: () => [],
  body: async () => new Uint8Array(0),
};

const TARGETS = [
  '/',
  '/v2/health/live',
  '/v2/health/live/',
  '//v2/health/live',
  '/v2/health/live?verbose=1&x=%2F',
  '/v2/health/live#fragment',
  '/v2/health/live?a#b',
  '/v2/health/%6Cive',
  '/v2/models/a%2Fb/infer',
  '/v2/models/a%25b/infer',
  '/v2/models/100%/infer',
  '/v2/models/%zz/infer',
  '/v2/models/%E2%82%AC/infer',
  '/v2/models/a b/infer',
  `/v2/models/${'x'.repeat(20_000)}/infer`,
];

describe('LiteRequest', () => {
  it.each(['http://localhost', 'https://localhost'])(
    'routes every target on the path hono would take from the URL (%s)',
    (origin) => {
      for (const target of TARGETS) {
        const lite = new LiteRequest('GET', target, source, origin);
        expect(lite.url).toBe(origin + target);
        expect(lite.path, target.slice(0, 60)).toBe(getPath(lite.asRequest()));
      }
    },
  );

  it('refuses a target that does not start with "/" (a URL where a target belongs)', () => {
    expect(() => new LiteRequest('GET', 'http://localhost/v2', source)).toThrow(/starts with "\/"/);
    expect(() => new LiteRequest('GET', '', source)).toThrow(TypeError);
  });
});
