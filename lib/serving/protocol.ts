/**
 * The Open Inference Protocol v2 response bodies that do not come from a model run, serialised once: server
 * metadata, liveness and readiness, and each model's metadata (cached per loaded model).
 */
import pkg from '../../package.json' with { type: 'json' };
import type { ResponseTensor } from '../inference/codec.ts';
import type { LoadedModel } from '../inference/model.ts';

export const SERVER_NAME = 'maap';
export const SERVER_VERSION: string = pkg.version;
/**
 * The model metadata `platform`: the protocol's name for "an ONNX model encoded for ONNX Runtime" (its list of
 * allowed platform names has no plain `onnxruntime`).
 */
export const PLATFORM = 'onnx_onnxv1';

export const LIVE_BODY = JSON.stringify({ live: true });
/** The prose spec prints `{"live": $bool}` for server ready, an evident copy slip; the key here is `ready`. */
export const READY_BODY = JSON.stringify({ ready: true });

export function serverMetadataBody(version = SERVER_VERSION): string {
  return JSON.stringify({ name: SERVER_NAME, version, extensions: [] });
}

const metadataCache = new WeakMap<LoadedModel, string>();

/** `{ name, versions, platform, inputs, outputs }` with the signature's tensors (-1 for dynamic dimensions). */
export function modelMetadataBody(model: LoadedModel): string {
  let body = metadataCache.get(model);
  if (body === undefined) {
    const tensor = (t: { name: string; datatype: string; shape: readonly number[] }) => ({
      name: t.name,
      datatype: t.datatype,
      shape: [...t.shape],
    });
    body = JSON.stringify({
      name: model.name,
      versions: [model.version],
      platform: PLATFORM,
      inputs: model.signature.inputs.map(tensor),
      outputs: model.signature.outputs.map(tensor),
    });
    metadataCache.set(model, body);
  }
  return body;
}

export function modelReadyBody(model: LoadedModel): string {
  return JSON.stringify({ name: model.name, ready: true });
}

export interface InferenceResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: ResponseTensor[];
}

/** The inference response: the request's `id` echoed when it had one (the protocol defines no generated id). */
export function inferenceResponse(
  model: { name: string; version: string },
  id: string | undefined,
  outputs: ResponseTensor[],
): InferenceResponse {
  return id === undefined
    ? { model_name: model.name, model_version: model.version, outputs }
    : { model_name: model.name, model_version: model.version, id, outputs };
}
