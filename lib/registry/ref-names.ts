/**
 * Model references and names, free of semver: the Lambda predictor reads its configured model with these on the
 * cold-start path without loading the range logic in `ref.ts` (which re-exports them).
 */
import { UsageError } from '../errors.ts';
import { NAME_PATTERN } from '../package/manifest-rules.ts';

/** Alias names: `production`, `staging`, `canary-eu`... never a semver range and never `latest`. */
export const ALIAS_PATTERN = /^[a-z][a-z0-9-]{1,62}$/;

/** The spec that resolves to the highest non-prerelease version. */
export const LATEST = 'latest';

/** A model reference as typed by a person: `fraud`, `fraud@1.4.0`, `fraud@^2`, `fraud@production`. */
export interface ModelRef {
  readonly name: string;
  /** The part after `@`; `undefined` when absent (callers usually treat that as `latest`). */
  readonly spec?: string;
}

/** Parses `name[@spec]`, validating the name. Throws UsageError. */
export function parseModelRef(ref: string): ModelRef {
  const at = ref.indexOf('@');
  const name = at < 0 ? ref : ref.slice(0, at);
  const spec = at < 0 ? undefined : ref.slice(at + 1).trim();
  checkModelName(name);
  if (spec === '')
    throw new UsageError(`"${ref}": nothing after "@" (expected a version, a range or an alias)`);
  return spec === undefined ? { name } : { name, spec };
}

export function checkModelName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new UsageError(
      `invalid model name "${name}": expected lowercase letters, digits and "-" ([a-z0-9][a-z0-9-]{0,62})`,
    );
  }
  return name;
}
