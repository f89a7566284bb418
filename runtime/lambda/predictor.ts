/**
 * The predictor's Lambda entry point (bundled by `npm run build` into `dist/predictor/index.mjs`, handler
 * `index.handler`). The model loads in the init phase (top-level await: ESM handlers may await before the
 * first invocation), from `MAAP_REGISTRY` + `MAAP_MODEL` + `MAAP_MODEL_VERSION`. Loading the model never throws:
 * without a usable model the function answers readiness with 503 and the reason, which is also logged. (A missing
 * onnxruntime layer, or one of another version than the bundle's, fails the import itself, naming the layer to
 * attach: the function cannot serve anything without it.)
 *
 * Start path: the package's S3 GET starts first (one signed request, no AWS SDK) and goes out (see
 * `Prefetch.sent`); the rest (hono, the verifier, onnxruntime-node's JavaScript, its native binding from the layer)
 * loads as a separate chunk while S3 answers.
 */
import { prefetchPackage } from './prefetch.ts';

const prefetch = prefetchPackage(process.env);
await prefetch?.sent;
const { createPredictor, lambdaHandler } = await import('./core.ts');
const predictor = await createPredictor({ ...(prefetch ? { prefetch } : {}) });

export const handler = lambdaHandler(predictor);
