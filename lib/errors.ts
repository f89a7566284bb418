/**
 * Every error maap raises on purpose is a `MaapError`: a named class, a message a person can act on, and an
 * HTTP status for the serving layer (4xx: the caller's fault, 5xx: ours). The CLI prints `message` without a
 * stack trace for these and exits non-zero.
 */
export class MaapError extends Error {
  /** HTTP status that best describes the error when it reaches a client. */
  readonly status: number = 500;
  /** Process exit code the CLI uses. */
  readonly exitCode: number = 1;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The user asked for something malformed: a bad flag, name, version or range. */
export class UsageError extends MaapError {
  override readonly status = 400;
  override readonly exitCode = 2;
}

/** A package (or a file going into one) breaks the format: structure, schema, hashes or limits. */
export class PackageIntegrityError extends MaapError {
  override readonly status = 422;
}

/** An ONNX file that cannot be parsed, or that maap refuses (external data). */
export class OnnxModelError extends MaapError {
  override readonly status = 422;
}

/** A signature is missing where trusted keys require one, or it does not verify. */
export class SignatureError extends MaapError {
  override readonly status = 422;
}

/** Something asked for is not there: model, version, alias, file. */
export class NotFoundError extends MaapError {
  override readonly status = 404;
}

/** The registry already holds this version: versions are immutable. */
export class VersionExistsError extends MaapError {
  override readonly status = 409;
}

/** The registry could not be reached or answered with something unexpected. */
export class RegistryError extends MaapError {
  override readonly status = 502;
}

/** An inference request the caller got wrong: malformed JSON body, unknown or missing input, bad datatype, shape or data. */
export class InferenceRequestError extends MaapError {
  override readonly status = 400;
}

/** A request body that ended before all of it arrived: the client closed or reset the connection. */
export class RequestCutOffError extends InferenceRequestError {}

/** A request body (or a tensor in it) larger than the server is configured to accept. */
export class PayloadTooLargeError extends MaapError {
  override readonly status = 413;
}
