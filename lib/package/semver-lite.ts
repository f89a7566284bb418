/**
 * The semver questions the predictor's cold start asks, answered without loading `semver` (its import alone costs
 * ~13 ms of a Lambda cold start here): is a string an exact version in canonical form, is a range the plain lower
 * bound `maap pack` writes for `requires.onnxruntime` (`>=1.17.0`, `>1.22.0`; also `>=1.17`), and does a release version satisfy
 * such a bound. Anything else is `undefined`, "not sure": the caller asks `semver` itself. A differential test
 * (test/package/semver-lite.test.ts) holds these answers to semver's own.
 */

/** semver's limits: longer strings are refused, components above Number.MAX_SAFE_INTEGER too. */
const MAX_LENGTH = 256;

/** A SemVer 2.0.0 pre-release identifier: numeric without a leading zero, or alphanumeric with a letter or "-". */
const PRERELEASE_ID = '(?:0|[1-9]\\d*|\\d*[a-zA-Z-][a-zA-Z0-9-]*)';
/** major.minor.patch[-prerelease], no "v", no build metadata, no whitespace: `semver.valid(v) === v`. */
const CANONICAL = new RegExp(
  `^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-${PRERELEASE_ID}(?:\\.${PRERELEASE_ID})*)?$`,
);
/** A release version: major.minor.patch only. */
const RELEASE = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/;
/** `>=X.Y.Z`, `>X.Y.Z`, or the partial `>=X.Y` and `>=X` (which semver reads as `>=X.Y.0`, `>=X.0.0`). */
const LOWER_BOUND = /^(?:(>=?)(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)|>=(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?)$/;

const safe = (digits: string | undefined): boolean => Number(digits) <= Number.MAX_SAFE_INTEGER;

/** Whether `semver.valid(v) === v`: an exact version in canonical form, such as `1.4.0` or `2.0.0-rc.1`. */
export function isCanonicalVersion(v: string): boolean {
  if (v.length > MAX_LENGTH) return false;
  const m = CANONICAL.exec(v);
  return m !== null && safe(m[1]) && safe(m[2]) && safe(m[3]);
}

interface Bound {
  readonly inclusive: boolean;
  readonly parts: readonly [number, number, number];
}

function lowerBound(range: string): Bound | undefined {
  const m = LOWER_BOUND.exec(range);
  if (m === null) return undefined;
  const full = m[1] !== undefined;
  const parts = full ? [m[2], m[3], m[4]] : [m[5], m[6] ?? '0', '0'];
  if (!parts.every(safe)) return undefined;
  return { inclusive: !full || m[1] === '>=', parts: parts.map(Number) as [number, number, number] };
}

/** `true` when `semver.validRange(range) !== null` for sure (a plain lower bound); `undefined`: ask semver. */
export function isPlainLowerBound(range: string): true | undefined {
  return lowerBound(range) ? true : undefined;
}

/**
 * `semver.satisfies(version, range, { includePrerelease: true })` when `version` is a release (`X.Y.Z`) and `range`
 * a plain lower bound; `undefined` otherwise (ask semver).
 */
export function satisfiesLowerBound(version: string, range: string): boolean | undefined {
  const bound = lowerBound(range);
  const m = RELEASE.exec(version);
  if (bound === undefined || m === null || !safe(m[1]) || !safe(m[2]) || !safe(m[3])) return undefined;
  const parts = [Number(m[1]), Number(m[2]), Number(m[3])];
  for (let i = 0; i < 3; i++) {
    const a = parts[i] as number;
    const b = bound.parts[i] as number;
    if (a !== b) return a > b;
  }
  return bound.inclusive;
}
