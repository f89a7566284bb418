/**
 * Why a model is refused at load time, or cannot answer right now. The loader's refusals are 422 (the package is
 * well-formed but this predictor will not serve it); a predictor without a usable model answers 503.
 */
import { MaapError } from '../errors.ts';

/** The package's `requires.onnxruntime` range does not include the onnxruntime-node version installed here. */
export class RuntimeRequirementError extends MaapError {
  override readonly status = 422;
}

/** The model uses something onnxruntime-node cannot run (BF16 inputs or outputs), or the session cannot be created. */
export class UnsupportedModelError extends MaapError {
  override readonly status = 422;
}

/** The manifest's example, run on the freshly loaded model, did not give the expected outputs. */
export class SmokeTestError extends MaapError {
  override readonly status = 422;
}

/** No model is loaded (yet), or the one asked for is unloading: try again later. */
export class ModelUnavailableError extends MaapError {
  override readonly status = 503;
}
