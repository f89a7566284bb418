/**
 * The model the Lambda tests serve: `mlpModel()` packed as `mlp@1.0.0` with a smoke-test example, pushed into a
 * real S3 API (s3rver) under `s3://<bucket>/models`, plus the environment a Lambda function would get.
 */
import { join } from 'node:path';
import { openRegistry } from '../../lib/registry/open.ts';
import { mlpModel, mlpReference } from '../fixtures/models.ts';
import { packFixture } from '../helpers/packages.ts';
import type { S3rverHandle } from '../helpers/s3rver.ts';

export const MODEL = 'mlp';
export const VERSION = '1.0.0';
export const PREFIX = 'models';

/** Two rows in, two rows out: the request every test sends, and what it must answer. */
export const INPUT = [
  [1, 2, 3, 4],
  [-1, 0.5, 2, -3],
];
export const INFER_REQUEST = {
  id: 'req-1',
  inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: INPUT }],
};
export const EXPECTED = mlpReference(INPUT.flat());

export const EXAMPLE = {
  request: { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [0.5, 1, 1.5, 2] }] },
  outputs: [{ name: 'y', shape: [1, 2], datatype: 'FP32', data: mlpReference([0.5, 1, 1.5, 2]) }],
};

/** Packs mlp@1.0.0 into `dir` and returns the package path. */
export async function packMlp(dir: string, version = VERSION): Promise<string> {
  const packed = await packFixture(dir, mlpModel(), { name: MODEL, version, example: EXAMPLE });
  return packed.path;
}

/** Opens the s3rver registry through the full registry (AWS SDK): tests use it to publish. */
export function s3Registry(s3: S3rverHandle) {
  return openRegistry(`s3://${s3.bucket}/${PREFIX}`, {
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: s3.credentials,
  });
}

/** Packs and pushes mlp@`version` to the s3rver registry. */
export async function publishMlp(s3: S3rverHandle, dir: string, version = VERSION): Promise<void> {
  const registry = s3Registry(s3);
  try {
    await registry.push(await packMlp(join(dir), version));
  } finally {
    await registry.close();
  }
}

/** The environment of a Lambda function serving `mlp@<version>` from the s3rver registry. */
export function lambdaEnv(s3: S3rverHandle, version = VERSION): Record<string, string> {
  return {
    MAAP_REGISTRY: `s3://${s3.bucket}/${PREFIX}`,
    MAAP_MODEL: MODEL,
    MAAP_MODEL_VERSION: version,
    MAAP_S3_ENDPOINT: s3.endpoint,
    AWS_REGION: s3.region,
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
    AWS_SESSION_TOKEN: 'IQoJb3JpZ2luX2VjEXAMPLE',
  };
}
