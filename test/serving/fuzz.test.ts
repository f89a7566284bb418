/**
 * Seeded fuzzing over loopback HTTP: a few thousand random and mutated requests (valid requests with fields
 * deleted, replaced or retyped, truncated and corrupted JSON text, odd paths, methods and content types) against
 * three models. No answer may be a 5xx, every answer must be protocol-shaped JSON, and the server must still
 * serve afterwards. The seed is fixed, so a failure reproduces; the failing request is printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATATYPES } from '../../lib/package/manifest.ts';
import { identityModel, multiIoModel } from '../fixtures/models.ts';
import { Draw, seededRandom } from '../helpers/random.ts';
import { call, type Served, serveFixture } from './harness.ts';

const SEED = 20240607;
const REQUESTS = 2400;
const CONCURRENCY = 12;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

class Gen extends Draw {
  /** A hostile scalar or small structure. */
  oddValue(): Json {
    return this.pick<() => Json>([
      () => null,
      () => true,
      () => 0,
      () => -0,
      () => -1,
      () => 1.5,
      () => 1e308,
      () => -1e308,
      () => 2 ** 53 + 2,
      () => 5e-324,
      () => '',
      () => 'NaN',
      () => 'Infinity',
      () => '-Infinity',
      () => '9223372036854775808',
      () => '-9223372036854775809',
      () => '18446744073709551616',
      () => '\u0000',
      () => '\ud800',
      () => 'x'.repeat(this.int(1, 5000)),
      () => [],
      () => [[]],
      () => ({}),
      () => ({ __proto__: 1 }) as Json,
      () => this.pick(DATATYPES),
      () => Array.from({ length: this.int(0, 8) }, () => this.int(-3, 10)),
      () => nest(this.int(1, 3000)),
      () => String(this.r()),
    ])();
  }
}

/** [[[...[1]...]]] `depth` levels deep. */
function nest(depth: number): Json {
  let v: Json = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

interface Target {
  served: Served;
  path: string;
  valid: (g: Gen) => { [key: string]: Json };
}

function validMulti(g: Gen): { [key: string]: Json } {
  const batch = g.int(1, 4);
  const n = g.int(1, 5);
  return {
    ...(g.chance(0.5) ? { id: String(g.int(0, 1e6)) } : {}),
    inputs: [
      {
        name: 'features',
        datatype: 'FP32',
        shape: [batch, 3],
        data: Array.from({ length: batch * 3 }, () => g.r() * 20 - 10),
      },
      {
        name: 'ids',
        datatype: 'INT64',
        shape: [n],
        data: Array.from({ length: n }, () => g.int(-1000, 1000)),
      },
    ],
    ...(g.chance(0.3)
      ? { outputs: [{ name: g.pick(['shifted', 'positive', 'doubled', 'next_ids', 'ids_f']) }] }
      : {}),
  };
}

function validIdentity(datatype: 'BYTES' | 'FP16') {
  return (g: Gen): { [key: string]: Json } => {
    const batch = g.int(1, 3);
    const data = Array.from({ length: batch * 3 }, () =>
      datatype === 'BYTES'
        ? g.pick(['a', 'héllo', '日本', '', '🙂'])
        : Math.round((g.r() * 200 - 100) * 8) / 8,
    );
    return { inputs: [{ name: 'x', datatype, shape: [batch, 3], data }] };
  };
}

/** Every container (object or array) in `root`, with its parent path length (for picking a spot to damage). */
function containers(root: Json): (Json[] | { [key: string]: Json })[] {
  const out: (Json[] | { [key: string]: Json })[] = [];
  const stack: Json[] = [root];
  while (stack.length > 0 && out.length < 200) {
    const v = stack.pop() as Json;
    if (v !== null && typeof v === 'object') {
      out.push(v);
      for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push(child);
    }
  }
  return out;
}

function mutate(g: Gen, body: { [key: string]: Json }): Json {
  for (let k = g.int(1, 3); k > 0; k--) {
    const target = g.pick(containers(body));
    const keys = Array.isArray(target) ? target.map((_, i) => i) : Object.keys(target);
    if (keys.length === 0) continue;
    const key = g.pick(keys as (string | number)[]);
    const container = target as { [key: string]: Json };
    switch (g.int(0, 4)) {
      case 0:
        if (Array.isArray(target)) target.splice(key as number, 1);
        else delete container[key];
        break;
      case 1:
        container[key] = g.oddValue();
        break;
      case 2:
        if (!Array.isArray(target)) container[`extra${g.int(0, 9)}`] = g.oddValue();
        else target.push(g.oddValue());
        break;
      case 3:
        container[key] = Array.isArray(container[key]) ? [] : String(container[key]);
        break;
      default:
        if (Array.isArray(target)) target.push(structuredClone(target[key as number] ?? null));
        else container[key] = structuredClone(body);
    }
  }
  return body;
}

function corruptText(g: Gen, text: string): string {
  switch (g.int(0, 3)) {
    case 0:
      return text.slice(0, g.int(0, text.length));
    case 1: {
      const i = g.int(0, text.length);
      return (
        text.slice(0, i) +
        g.pick(['"', '}', ']', ',', '\\', '\u0000', 'NaN', '1e99999', '\ud83d']) +
        text.slice(i)
      );
    }
    case 2:
      return Array.from({ length: g.int(0, 200) }, () => String.fromCharCode(g.int(0, 0xffff))).join('');
    default:
      return ` ${text} ${g.pick(['', '{}', 'x', '[]'])}`;
  }
}

const PATHS = [
  '/v2',
  '/v2/',
  '/v2/health/live',
  '/v2/health/ready',
  '/v2/models/%s',
  '/v2/models/%s/ready',
  '/v2/models/%s/versions/1.0.0',
  '/v2/models/%s/versions/0.0.1/infer',
  '/v2/models/other/infer',
  '/v2/models/%s/infer/',
  '/v2/models/%2e%2e/infer',
  '/v2//models/%s/infer',
  '/v3/models/%s/infer',
  '/v2/models/%s/versions//infer',
  '/',
];

describe('fuzzing the HTTP app', () => {
  let targets: Target[];
  beforeAll(async () => {
    const [multi, bytes, half] = await Promise.all([
      serveFixture(multiIoModel(), { pack: { name: 'multi' } }),
      serveFixture(identityModel('BYTES'), { pack: { name: 'text' } }),
      serveFixture(identityModel('FP16'), { pack: { name: 'half' } }),
    ]);
    targets = [
      { served: multi, path: '/v2/models/multi/infer', valid: validMulti },
      { served: bytes, path: '/v2/models/text/infer', valid: validIdentity('BYTES') },
      { served: half, path: '/v2/models/half/infer', valid: validIdentity('FP16') },
    ];
  });
  afterAll(() => Promise.all(targets.map((t) => t.served.close())));

  it(`answers ${REQUESTS} random and mutated requests without a 5xx`, async () => {
    const g = new Gen(seededRandom(SEED));
    const plans = Array.from({ length: REQUESTS }, () => plan(g, targets));
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < plans.length) {
        const p = plans[next++] as ReturnType<typeof plan>;
        let status: number;
        try {
          ({ status } = await call(p.url, p.method, p.path, {
            ...(p.body !== undefined ? { body: p.body } : {}),
            ...(p.headers ? { headers: p.headers } : {}),
          }));
        } catch (err) {
          throw new Error(`${p.method} ${p.path} ${String(p.body).slice(0, 300)}: ${(err as Error).message}`);
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status >= 500)
          throw new Error(`${status} for ${p.method} ${p.path}: ${String(p.body).slice(0, 500)}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // The mix really exercised both sides: successes and each kind of refusal.
    for (const status of [200, 400, 404, 405, 415])
      expect(statuses.get(status) ?? 0, `status ${status}`).toBeGreaterThan(0);
    for (const t of targets) {
      expect((await call(t.served.url, 'GET', '/v2/health/ready')).status).toBe(200);
      expect((await call(t.served.url, 'POST', t.path, { body: t.valid(g) })).status).toBe(200);
      expect(t.served.logs.filter((l) => l.level === 'ERROR')).toEqual([]);
    }
  });
});

function plan(g: Gen, targets: Target[]) {
  const t = g.pick(targets);
  const name = t.path.split('/')[3] as string;
  const kind = g.r();
  const headers: Record<string, string> = {};
  if (g.chance(0.05))
    headers['content-type'] = g.pick([
      'text/plain',
      'application/xml',
      'application/json; charset=latin1',
      '',
    ]);
  if (g.chance(0.05)) headers['x-request-id'] = g.pick(['ok-1', 'bad id', 'x'.repeat(300), '']);
  const extra = Object.keys(headers).length ? { headers } : {};
  if (kind < 0.3)
    return { url: t.served.url, method: 'POST', path: t.path, body: JSON.stringify(t.valid(g)), ...extra };
  if (kind < 0.7)
    return {
      url: t.served.url,
      method: 'POST',
      path: t.path,
      body: JSON.stringify(mutate(g, t.valid(g))),
      ...extra,
    };
  if (kind < 0.85) {
    return {
      url: t.served.url,
      method: 'POST',
      path: t.path,
      body: corruptText(g, JSON.stringify(t.valid(g))),
      ...extra,
    };
  }
  const method = g.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
  const path = g.pick(PATHS).replace('%s', name);
  const body = method === 'GET' || method === 'HEAD' ? undefined : JSON.stringify(t.valid(g));
  return { url: t.served.url, method, path, body, ...extra };
}
