import semver from 'semver';
import { UsageError } from '../errors.ts';
import { NAME_PATTERN } from '../package/manifest.ts';

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
