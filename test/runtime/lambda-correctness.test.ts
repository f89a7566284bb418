/**
 * The Lambda handler answers exactly what onnxruntime computes when called directly, for every datatype
 * onnxruntime-node can carry and for a model with several inputs and outputs, through each event shape AWS
 * delivers: a Function URL request, an API Gateway HTTP API (v2) request and a REST API (v1) proxy request.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeOutput } from '../../lib/inference/codec.ts';
import { openRegistry } from '../../lib/registry/open.ts';
import {
  createPredictor,
  type LambdaHandler,
  lambdaHandler,
  type Predictor,
} from '../../runtime/lambda/core.ts';
import { CASES, type ServedDatatype } from '../fixtures/datatype-cases.ts';
import { identityModel, multiIoModel } from '../fixtures/models.ts';
import { packFixture, tempDir } from '../helpers/packages.ts';
import { EVENT_KINDS, lambdaContext, lambdaEvent } from './lambda-events.ts';

const DATATYPES = Object.keys(CASES) as ServedDatatype[];
let work: { dir: string; cleanup: () => Promise<void> };
let registryDir: string;
const lines: string[] = [];

beforeAll(async () => {
  work = await tempDir('maap-lambda-dtypes-');
  registryDir = join(work.dir, 'registry');
  const registry = openRegistry(registryDir);
  for (const datatype of DATATYPES) {
    const name = `identity-${datatype.toLowerCase()}`;
    await registry.push((await packFixture(work.dir, identityModel(datatype), { name })).path);
  }
  await registry.push(
    (await packFixture(work.dir, multiIoModel(), { name: 'multi', version: '2.1.0' })).path,
  );
  await registry.close();
});
afterAll(() => work?.cleanup());

async function predictorFor(
  model: string,
  version: string,
): Promise<{ predictor: Predictor; handler: LambdaHandler }> {
  const predictor = await createPredictor({
    env: { MAAP_REGISTRY: registryDir, MAAP_MODEL: model, MAAP_MODEL_VERSION: version },
    sink: (line) => lines.push(line),
  });
  expect(predictor.init.ready, JSON.stringify(predictor.init)).toBe(true);
  return { predictor, handler: lambdaHandler(predictor) };
}

async function invoke(
  handler: LambdaHandler,
  kind: (typeof EVENT_KINDS)[number],
  path: string,
  body: unknown,
) {
  const result = (await handler(
    lambdaEvent(kind, { method: 'POST', path, body }) as never,
    lambdaContext() as never,
  )) as {
    statusCode: number;
    body: string;
    headers?: Record<string, string>;
    multiValueHeaders?: Record<string, string[]>;
  };
  const contentType = result.headers?.['content-type'] ?? result.multiValueHeaders?.['content-type']?.[0];
  return { status: result.statusCode, body: JSON.parse(result.body), contentType };
}

describe('Lambda handler: answers equal a direct session.run for every datatype, through every event shape', () => {
  it.each(DATATYPES)('%s', async (datatype) => {
    const name = `identity-${datatype.toLowerCase()}`;
    const { predictor, handler } = await predictorFor(name, '1.0.0');
    try {
      const { values, tensor } = CASES[datatype];
      const model = predictor.init.ready ? predictor.init.model : undefined;
      const direct = await model?.session.run({ x: tensor([2, 3]) });
      const expected = [encodeOutput('y', direct?.y as ort.Tensor)];
      for (const kind of EVENT_KINDS) {
        const answer = await invoke(handler, kind, `/v2/models/${name}/infer`, {
          id: `${kind}-${datatype}`,
          inputs: [{ name: 'x', datatype, shape: [2, 3], data: [values.slice(0, 3), values.slice(3)] }],
        });
        expect(answer.status, `${kind}: ${JSON.stringify(answer.body)}`).toBe(200);
        expect(answer.contentType).toMatch(/^application\/json/);
        expect(answer.body).toEqual({
          model_name: name,
          model_version: '1.0.0',
          id: `${kind}-${datatype}`,
          outputs: expected,
        });
      }
    } finally {
      await predictor.slot.close();
    }
  });

  it('a model with several inputs and outputs, on the versioned path, with an outputs subset', async () => {
    const { predictor, handler } = await predictorFor('multi', '2.1.0');
    try {
      const features = [
        [1, -2, 0.5],
        [-0.25, 3, 0],
      ];
      const ids = [1, -5, '9007199254740993', 0];
      const model = predictor.init.ready ? predictor.init.model : undefined;
      const direct = (await model?.session.run({
        features: new ort.Tensor('float32', Float32Array.from(features.flat()), [2, 3]),
        ids: new ort.Tensor(
          'int64',
          BigInt64Array.from(ids, (x) => BigInt(x)),
          [4],
        ),
      })) as Record<string, ort.Tensor>;
      const request = {
        inputs: [
          { name: 'features', datatype: 'FP32', shape: [2, 3], data: features },
          { name: 'ids', datatype: 'INT64', shape: [4], data: ids },
        ],
        outputs: [{ name: 'next_ids' }, { name: 'shifted' }],
      };
      for (const kind of EVENT_KINDS) {
        const answer = await invoke(handler, kind, '/v2/models/multi/versions/2.1.0/infer', request);
        expect(answer.status).toBe(200);
        expect(answer.body.outputs).toEqual([
          encodeOutput('next_ids', direct.next_ids as ort.Tensor),
          encodeOutput('shifted', direct.shifted as ort.Tensor),
        ]);
        expect(answer.body.outputs[0].data).toEqual([2, -4, '9007199254740994', 1]);
      }
    } finally {
      await predictor.slot.close();
    }
  });
});
