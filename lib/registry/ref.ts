import semver from 'semver';
import { UsageError } from '../errors.ts';
import { ALIAS_PATTERN, LATEST } from './ref-names.ts';

export { ALIAS_PATTERN, checkModelName, LATEST, type ModelRef, parseModelRef } from './ref-names.ts';

/** Validates a name for `setAlias`: it must never be mistaken for a version range or `latest`. */
export function checkAliasName(alias: string): string {
  if (alias === LATEST)
    throw new UsageError(`"${LATEST}" is reserved: it always means the highest stable version`);
  if (semver.validRange(alias) !== null) {
    throw new UsageError(
      `invalid alias "${alias}": it reads as a semver range; pick a name such as "production"`,
    );
  }
  if (!ALIAS_PATTERN.test(alias)) {
    throw new UsageError(
      `invalid alias "${alias}": expected a lowercase letter, then letters, digits or "-" (2-63 chars)`,
    );
  }
  return alias;
}

/** Whether `alias` is a name `setAlias` accepts. */
export function isAliasName(alias: string): boolean {
  return alias !== LATEST && ALIAS_PATTERN.test(alias) && semver.validRange(alias) === null;
}

/** Validates an exact version (`1.4.0`, `2.0.0-rc.1`) and returns its canonical form. */
export function checkVersion(version: string): string {
  const v = semver.valid(version);
  if (v === null || v !== version.replace(/^v/, '')) {
    throw new UsageError(`invalid version "${version}": expected an exact semantic version such as 1.4.0`);
  }
  return v;
}

/** How a spec is read: `latest`, a semver range (exact versions included), or an alias name. */
export function classifySpec(spec: string): 'latest' | 'range' | 'alias' {
  if (spec === LATEST) return 'latest';
  return semver.validRange(spec) !== null ? 'range' : 'alias';
}
