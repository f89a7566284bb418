/**
 * Every way a caller can get a request wrong, each answered with the right 4xx and a message that names the
 * problem, and the server still serving afterwards.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BODY_LIMIT } from '../../lib/serving/app.ts';
import { multiIoModel } from '../fixtures/models.ts';
import { assertValidResponse } from '../helpers/openapi.ts';
import { call, infer, type Served, serveFixture } from './harness.ts';

let served: Served;
beforeAll(async () => {
  served = await serveFixture(multiIoModel(), { pack: { name: 'multi', version: '1.0.0' } });
});
afterAll(() => served.close());

const PATH = '/v2/models/multi/infer';
const features = (patch: Record<string, unknown> = {}) => ({
  name: 'features',
  datatype: 'FP32',
  shape: [1, 3],
  data: [1, 2, 3],
  ...patch,
});
const ids = (patch: Record<string, unknown> = {}) => ({
  name: 'ids',
  datatype: 'INT64',
  shape: [2],
  data: [1, 2],
  ...patch,
});
const valid = () => ({ inputs: [features(), ids()] });

afterEach(async () => {
  const ready = await call(served.url, 'GET', '/v2/health/ready');
  expect(ready.status).toBe(200);
  const ok = await infer(served.url, valid(), PATH);
  expect(ok.status).toBe(200);
});

async function refused(
  status: number,
  message: RegExp,
  body: unknown,
  path = PATH,
  headers?: Record<string, string>,
) {
  const answer = await infer(served.url, body, path, headers);
  expect(answer.body.error).toMatch(message);
  expect(answer.status).toBe(status);
}

describe('the request body', () => {
  it('malformed JSON → 400', () => refused(400, /^malformed JSON in the request body: /, '{"inputs": [}'));
  it('an empty body → 400', () => refused(400, /the request body is empty/, ''));
  it('bytes that are not UTF-8 → 400 saying where (not turned into U+FFFD)', async () => {
    const text = JSON.stringify({ inputs: [features(), ids()] });
    const at = text.indexOf('"ids"') + 2; // inside the input's name
    const bytes = Buffer.concat([
      Buffer.from(text.slice(0, at)),
      Buffer.from([0xff]),
      Buffer.from(text.slice(at)),
    ]);
    const response = await fetch(served.url + PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: bytes,
    });
    const answer = (await response.json()) as { error: string };
    expect(answer.error).toBe(
      `the request body is not valid UTF-8 (an ill-formed sequence at byte ${at}): JSON text must be UTF-8`,
    );
    expect(response.status).toBe(400);
  });
  it('a UTF-8 byte order mark before the JSON is accepted', async () => {
    const response = await fetch(served.url + PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(valid()))]),
    });
    expect(response.status).toBe(200);
  });
  it('JSON that is not an object → 400', () =>
    refused(400, /the request body must be a JSON object/, '[1, 2]'));
  it('a NaN literal (not JSON) → 400', () =>
    refused(
      400,
      /^malformed JSON/,
      '{"inputs": [{"name": "ids", "datatype": "INT64", "shape": [1], "data": [NaN]}]}',
    ));
  it('an unknown top-level field → 400', () =>
    refused(400, /Unrecognized key: "input"/, { ...valid(), input: [] }));
  it('inputs that are not an array → 400', () =>
    refused(400, /inputs: must be an array of input tensors/, { inputs: {} }));
});

describe('the content type', () => {
  it('text/plain → 415', () =>
    refused(
      415,
      /content type "text\/plain" is not supported: send the request as application\/json/,
      valid(),
      PATH,
      {
        'content-type': 'text/plain',
      },
    ));
  it("curl's default form type → 415", () =>
    refused(415, /application\/x-www-form-urlencoded/, valid(), PATH, {
      'content-type': 'application/x-www-form-urlencoded',
    }));
  it('a charset other than UTF-8 → 415', () =>
    refused(415, /charset "iso-8859-1" is not supported/, valid(), PATH, {
      'content-type': 'application/json; charset=ISO-8859-1',
    }));
  it('application/json; charset=utf-8 is accepted', async () => {
    const answer = await infer(served.url, valid(), PATH, {
      'content-type': 'application/json; charset=utf-8',
    });
    expect(answer.status).toBe(200);
  });
  it('a missing content type is accepted as JSON (documented decision)', async () => {
    const response = await fetch(served.url + PATH, {
      method: 'POST',
      body: new Blob([JSON.stringify(valid())]),
    });
    expect(response.status).toBe(200);
  });
});

describe('inputs', () => {
  it('a missing input → 400 naming it', () =>
    refused(400, /^missing input "ids" \(INT64 \[-1\]\)$/, { inputs: [features()] }));
  it('an extra input → 400 naming it', () =>
    refused(400, /^unknown input "extra": the model's inputs are "features", "ids"$/, {
      inputs: [features(), ids(), ids({ name: 'extra' })],
    }));
  it('a misnamed input → 400 naming it', () =>
    refused(400, /^unknown input "feature"/, { inputs: [features({ name: 'feature' }), ids()] }));
  it('an input given twice → 400', () =>
    refused(400, /input "ids" is given more than once/, { inputs: [features(), ids(), ids()] }));
  it('a wrong datatype → 400', () =>
    refused(400, /input "features": datatype FP64 does not match the model's FP32/, {
      inputs: [features({ datatype: 'FP64' }), ids()],
    }));
  it('an unknown datatype → 400', () =>
    refused(400, /inputs\[0\]\.datatype: must be one of BOOL/, {
      inputs: [features({ datatype: 'FLOAT' }), ids()],
    }));
  it('a wrong rank → 400', () =>
    refused(400, /input "features": shape \[3\] has rank 1 but the model expects rank 2 \[-1,3\]/, {
      inputs: [features({ shape: [3] }), ids()],
    }));
  it('a wrong fixed dimension → 400', () =>
    refused(400, /input "features": shape \[1,4\]: dimension 1 is 4 but the model expects 3/, {
      inputs: [features({ shape: [1, 4], data: [1, 2, 3, 4] }), ids()],
    }));
  it('a data count that does not match the shape → 400', () =>
    refused(400, /input "features": shape \[2,3\] has 6 elements but data has 3/, {
      inputs: [features({ shape: [2, 3] }), ids()],
    }));
  it('nested data that does not match the shape → 400', () =>
    refused(400, /input "features": data\[1\] has 2 elements but dimension 1 of shape \[2,3\] is 3/, {
      inputs: [
        features({
          shape: [2, 3],
          data: [
            [1, 2, 3],
            [4, 5],
          ],
        }),
        ids(),
      ],
    }));
  it('a non-numeric value → 400', () =>
    refused(400, /input "features": data\[1\] is "abc"; FP32 takes JSON numbers/, {
      inputs: [features({ data: [1, 'abc', 3] }), ids()],
    }));
  it('a null value → 400', () =>
    refused(400, /input "ids": data\[0\] is null; INT64 takes JSON integers or decimal strings/, {
      inputs: [features(), ids({ data: [null, 1] })],
    }));
  it('"NaN" where the datatype has no NaN → 400', () =>
    refused(400, /input "ids": data\[1\] is "NaN"; INT64 takes/, {
      inputs: [features(), ids({ data: [1, 'NaN'] })],
    }));
  it('"Infinity" where the datatype has no infinity → 400', () =>
    refused(400, /input "ids": data\[0\] is "Infinity"/, {
      inputs: [features(), ids({ data: ['Infinity', 1] })],
    }));
  it('a float overflowing FP32 → 400', () =>
    refused(400, /data\[0\] is 1e\+39, out of range for FP32/, {
      inputs: [features({ data: [1e39, 0, 0] }), ids()],
    }));
  it('a number literal beyond float64 (1e400, which JSON.parse reads as Infinity) → 400', () =>
    refused(
      400,
      /input "features": data\[0\] is Infinity, a number beyond the range of FP32 \(a literal such as 1e400/,
      JSON.stringify(valid()).replace('"data":[1,2,3]', '"data":[1e400,2,3]'),
    ));
  it('a negative dimension → 400', () =>
    refused(400, /input "ids": shape \[-2\]: dimension 0 is -2; dimensions are non-negative integers/, {
      inputs: [features(), ids({ shape: [-2] })],
    }));
  it('a zero dimension → 400', () =>
    refused(400, /input "features": shape \[0,3\] describes an empty tensor/, {
      inputs: [features({ shape: [0, 3], data: [] }), ids()],
    }));
  it('a fractional dimension → 400', () =>
    refused(400, /inputs\[1\]\.shape\[0\]: must be an integer/, {
      inputs: [features(), ids({ shape: [1.5] })],
    }));
  it('a dimension beyond 2^53 - 1 (not an exact integer in JSON) → 400 saying so', () =>
    refused(400, /inputs\[1\]\.shape\[0\]: must be an integer \(of at most 2\^53 - 1\)/, {
      inputs: [features(), ids({ shape: [2 ** 53] })],
    }));
  it('an unknown requested output → 400', () =>
    refused(400, /unknown output "nope": the model's outputs are "shifted"/, {
      ...valid(),
      outputs: [{ name: 'nope' }],
    }));
});

describe('the body limit', () => {
  it('a streamed body over the limit (no Content-Length) → 413 while it streams', async () => {
    const answer = await streamBody(DEFAULT_BODY_LIMIT + 2 * 1024 * 1024, {});
    expect(answer.status).toBe(413);
    expect(answer.body.error).toBe(
      `the request body is larger than the limit of ${DEFAULT_BODY_LIMIT} bytes`,
    );
    expect(answer.contentType).toBe('application/json');
  });

  it('a declared Content-Length over the limit → 413 before the body is read', async () => {
    const answer = await streamBody(0, { 'content-length': String(DEFAULT_BODY_LIMIT + 1) });
    expect(answer.status).toBe(413);
    expect(answer.body.error).toMatch(/larger than the limit/);
  });
});

describe('routes', () => {
  it('an unknown model → 404', async () => {
    await refused(
      404,
      /^unknown model "fraud": this server serves "multi"$/,
      valid(),
      '/v2/models/fraud/infer',
    );
    const metadata = await call(served.url, 'GET', '/v2/models/fraud');
    expect(metadata.status).toBe(404);
  });
  it('an unknown version → 404', async () => {
    await refused(
      404,
      /unknown version "9.9.9" of model "multi": this server serves version 1.0.0/,
      valid(),
      '/v2/models/multi/versions/9.9.9/infer',
    );
    expect((await call(served.url, 'GET', '/v2/models/multi/versions/9.9.9/ready')).status).toBe(404);
  });
  it('an unknown route → 404', async () => {
    const answer = await call(served.url, 'GET', '/v1/models/multi');
    expect(answer.status).toBe(404);
    expect(answer.body.error).toMatch(/^no such endpoint: GET \/v1\/models\/multi/);
  });
  it('a wrong method → 405 with Allow', async () => {
    const answer = await call(served.url, 'GET', PATH);
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('POST');
    expect(answer.body.error).toBe(`GET is not allowed on ${PATH}: use POST`);
    const post = await call(served.url, 'POST', '/v2/health/live', { body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
  });
});

/**
 * POSTs `bytes` of JSON whitespace after an opening brace, in 64 KiB chunks without Content-Length (chunked)
 * unless headers say otherwise, and stops writing once the server has answered.
 */
function streamBody(bytes: number, headers: Record<string, string>) {
  return new Promise<{ status: number; contentType: string | undefined; body: { error: string } }>(
    (resolve, reject) => {
      const req = httpRequest(served.url + PATH, {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', ...headers },
      });
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          const body = JSON.parse(text);
          assertValidResponse('POST', PATH, res.statusCode ?? 0, body);
          resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body });
          req.destroy();
        });
      });
      req.on('error', (err) => {
        if (!answered) reject(err);
      });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let written = 0;
      req.write('{');
      if (bytes === 0) {
        req.flushHeaders();
        return;
      }
      const pump = (): void => {
        while (!answered && written < bytes) {
          written += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        if (!answered) req.end('}');
      };
      pump();
    },
  );
}
