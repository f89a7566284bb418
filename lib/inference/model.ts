/**
 * Loading a model for serving: verify the package (in memory) → check that this runtime can run it → create the
 * onnxruntime session → smoke-test it with the manifest's example → warm it up. A model that fails any step is
 * refused with a named error and its session released; a `LoadedModel` is ready for traffic.
 */
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { nowMs } from '../clock.ts';
import { InferenceRequestError, MaapError } from '../errors.ts';
import type { Manifest } from '../package/manifest.ts';
import { satisfiesLowerBound } from '../package/semver-lite.ts';
import { type DecodeLimits, encodeOutput, type ResponseTensor } from './codec.ts';
import { ModelUnavailableError, RuntimeRequirementError, UnsupportedModelError } from './model-errors.ts';
import { type ModelSource, readPackage } from './package-source.ts';
import type { Signature, ValidatedRequest } from './request-check.ts';
import { smokeTest, warmUp } from './smoke.ts';

export type { ModelSource, RegistrySource } from './package-source.ts';

/** A model ready for traffic. */
export interface LoadedModel {
  readonly name: string;
  readonly version: string;
  readonly manifest: Manifest;
  /** Package identity: SHA-256 (hex) of the manifest bytes. */
  readonly id: string;
  /** Whether the package carried a signature (verified against the trusted keys when some were given). */
  readonly signed: boolean;
  readonly session: ort.InferenceSession;
  readonly signature: Signature;
  /** Limits `validateRequest` applies to this model's requests. */
  readonly limits: DecodeLimits;
  /** What loading did and how long each step took. */
  readonly stats: LoadStats;
  /** Runs a validated request, fetching only the requested outputs; returns them encoded, in request order. */
  run(request: ValidatedRequest): Promise<ResponseTensor[]>;
  /** Refuses new runs, waits for the running ones, then releases the session. Idempotent. */
  close(): Promise<void>;
}

export interface LoadStats {
  /** Where the package came from: a path, "package bytes", or `name@version from <registry>`. */
  readonly origin: string;
  readonly verifyMs: number;
  readonly sessionMs: number;
  /** `passed`, or `none` when the manifest has no example, or `skipped` when disabled. */
  readonly smokeTest: 'passed' | 'none' | 'skipped';
  /** `ok`, `skipped`, or why the synthetic warm-up run failed (never a refusal: the request may be unrealistic). */
  readonly warmUp: string;
  readonly totalMs: number;
}

export interface LoadOptions {
  /** Ed25519 public keys; when given, the package must be signed by one of them. */
  readonly trustedKeys?: readonly (string | KeyObject)[];
  /** Threads for one operator. @default $MAAP_INTRA_OP_THREADS, else os.availableParallelism() (Lambda: the vCPUs of the memory size) */
  readonly intraOpThreads?: number;
  /** Extra onnxruntime session options, applied over maap's defaults. */
  readonly sessionOptions?: ort.InferenceSession.SessionOptions;
  /** Run the manifest's example and refuse the model when it fails. @default true */
  readonly smokeTest?: boolean;
  /** Run one request before traffic (the smoke test counts as one). @default true */
  readonly warmUp?: boolean;
  /** Request limits for this model. @default the codec's (16 777 216 elements, no empty tensors) */
  readonly limits?: DecodeLimits;
  /** The onnxruntime version to check `requires.onnxruntime` against. @default the installed onnxruntime-node's */
  readonly runtimeVersion?: string;
}

/** The installed onnxruntime-node version. */
export const RUNTIME_VERSION: string = ort.env.versions.common;

/**
 * Rejects (RuntimeRequirementError, UnsupportedModelError) a manifest this runtime cannot serve:
 * `requires.onnxruntime` not satisfied by `runtimeVersion`, or BF16 in the signature (onnxruntime-node cannot even
 * create a session for it). Asynchronous: a range other than the plain lower bound `maap pack` writes loads semver.
 */
export async function checkRuntimeRequirements(
  manifest: Manifest,
  runtimeVersion = RUNTIME_VERSION,
): Promise<void> {
  const { name, version, requires, signature } = manifest;
  // The range maap pack writes (>=X.Y.Z) is answered without loading semver (see semver-lite.ts).
  const satisfied =
    satisfiesLowerBound(runtimeVersion, requires.onnxruntime) ??
    (await import('semver')).default.satisfies(runtimeVersion, requires.onnxruntime, {
      includePrerelease: true,
    });
  if (!satisfied) {
    throw new RuntimeRequirementError(
      `${name}@${version} requires onnxruntime ${requires.onnxruntime}, but this predictor runs onnxruntime-node ${runtimeVersion}`,
    );
  }
  const bf16 = [...signature.inputs, ...signature.outputs].filter((t) => t.datatype === 'BF16');
  if (bf16.length > 0) {
    throw new UnsupportedModelError(
      `${name}@${version} uses BF16 (${bf16.map((t) => JSON.stringify(t.name)).join(', ')}), which onnxruntime-node cannot run; export the model with FP32 or FP16 inputs and outputs`,
    );
  }
}

/** maap's session defaults: full graph optimisation, sequential execution, no spinning threads (bursty traffic). */
export function sessionOptions(options: LoadOptions = {}): ort.InferenceSession.SessionOptions {
  const fromEnv = Number.parseInt(process.env.MAAP_INTRA_OP_THREADS ?? '', 10);
  const threads = options.intraOpThreads ?? (fromEnv > 0 ? fromEnv : availableParallelism());
  return {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    logSeverityLevel: 4,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
    ...options.sessionOptions,
  };
}

/** Loads, checks, smoke-tests and warms up a model from a package file, package bytes or a registry reference. */
export async function loadModel(source: ModelSource, options: LoadOptions = {}): Promise<LoadedModel> {
  const start = nowMs();
  const pkg = await readPackage(source, options.trustedKeys);
  const { manifest, id, signed } = pkg.verified;
  await checkRuntimeRequirements(manifest, options.runtimeVersion);
  const verifyMs = nowMs() - start;

  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(pkg.model, sessionOptions(options));
  } catch (err) {
    throw new UnsupportedModelError(
      `onnxruntime cannot load ${manifest.name}@${manifest.version}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const sessionMs = nowMs() - start - verifyMs;
  const model = new OnnxModel(manifest, id, signed, session, options.limits ?? {});
  try {
    const tested = options.smokeTest === false ? 'skipped' : manifest.example ? 'passed' : 'none';
    if (tested === 'passed') await smokeTest(model);
    const warm = options.warmUp === false ? 'skipped' : tested === 'passed' ? 'ok' : await warmUp(model);
    model.stats = {
      origin: pkg.origin,
      verifyMs,
      sessionMs,
      smokeTest: tested,
      warmUp: warm,
      totalMs: nowMs() - start,
    };
    return model;
  } catch (err) {
    await model.close();
    throw err;
  }
}

/** ORT's message for a kernel that failed on the given data: the caller's inputs, not our fault. */
const INPUT_DEPENDENT = /^(Non-zero status code returned while running|Got invalid dimensions)/;

class OnnxModel implements LoadedModel {
  readonly name: string;
  readonly version: string;
  readonly signature: Signature;
  stats: LoadStats = {
    origin: '',
    verifyMs: 0,
    sessionMs: 0,
    smokeTest: 'none',
    warmUp: 'skipped',
    totalMs: 0,
  };
  private inFlight = 0;
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  constructor(
    readonly manifest: Manifest,
    readonly id: string,
    readonly signed: boolean,
    readonly session: ort.InferenceSession,
    readonly limits: DecodeLimits,
  ) {
    this.name = manifest.name;
    this.version = manifest.version;
    this.signature = manifest.signature;
  }

  async run(request: ValidatedRequest): Promise<ResponseTensor[]> {
    if (this.closing) throw new ModelUnavailableError(`${this.name}@${this.version} is unloading; retry`);
    this.inFlight++;
    try {
      const results = await this.session.run(request.feeds, request.outputNames);
      return request.outputNames.map((name) => encodeOutput(name, results[name] as ort.Tensor));
    } catch (err) {
      if (err instanceof MaapError) throw err;
      const message = (err as Error).message ?? String(err);
      if (INPUT_DEPENDENT.test(message)) {
        throw new InferenceRequestError(`the model cannot run on these inputs: ${tidy(message)}`, {
          cause: err,
        });
      }
      throw new MaapError(`onnxruntime failed to run ${this.name}@${this.version}: ${message}`, {
        cause: err,
      });
    } finally {
      if (--this.inFlight === 0) this.drained?.();
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.inFlight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      await this.session.release();
    })();
    return this.closing;
  }
}

/** Drops ORT's source location ("/onnxruntime_src/...cc:123 void f(args) ") and trailing whitespace. */
function tidy(message: string): string {
  return message
    .replace(/\/onnxruntime_src\/\S+:\d+ [^\n]*?\) /g, '')
    .trim()
    .slice(0, 500);
}
