import type { Manifest } from '../package/manifest.ts';
import type { VerifyOptions } from '../package/verify.ts';

/** One stored version of a model. */
export interface VersionInfo {
  readonly name: string;
  readonly version: string;
  /** Store key: `<name>/<version>.maap`. */
  readonly key: string;
  /** Package size in bytes. */
  readonly size: number;
  /** When the package was built (from the manifest). */
  readonly createdAt: string;
  /** When the package landed in the registry (object modification time). */
  readonly pushedAt: Date;
  /** Training metrics from the manifest (`accuracy`, `auc`, ...). */
  readonly metrics: Readonly<Record<string, number>>;
  /** Package identity: SHA-256 (hex) of the manifest bytes. */
  readonly id: string;
  readonly manifest: Manifest;
}

/** One model with its versions (ascending semver) and aliases (by alias name). */
export interface ModelInfo {
  readonly name: string;
  readonly versions: readonly VersionInfo[];
  readonly aliases: readonly AliasRecord[];
  /** Stored objects that could not be read (a corrupt package or alias document): listed, not fatal. */
  readonly problems: readonly ListingProblem[];
}

/** An object a listing skipped, and why. */
export interface ListingProblem {
  readonly key: string;
  readonly error: string;
}

/** The content of `<name>/aliases/<alias>.json`. */
export interface AliasDocument {
  readonly version: string;
  readonly updatedAt: string;
  readonly by: string;
}

export interface AliasRecord extends AliasDocument {
  readonly name: string;
  readonly alias: string;
}

/** What `setAlias` did. */
export interface AliasUpdate extends AliasRecord {
  /** The version the alias pointed to before, if it existed. */
  readonly previous?: string;
}

/** What a spec resolved to. */
export interface Resolved {
  readonly name: string;
  readonly version: string;
  readonly key: string;
  /** How the spec was read. */
  readonly via: 'latest' | 'range' | 'alias';
  /** Set when resolved through an alias. */
  readonly alias?: string;
}

export interface Progress {
  /** `verify`: reading the local package before a push; `upload`/`download`: the transfer itself. */
  readonly phase: 'verify' | 'upload' | 'download';
  readonly transferred: number;
  readonly total: number;
}

export interface TransferOptions {
  readonly onProgress?: (progress: Progress) => void;
  /** Passed to `verifyPackage`: when set, the package must be signed by one of these keys. */
  readonly trustedKeys?: VerifyOptions['trustedKeys'];
}

export interface PushResult {
  readonly name: string;
  readonly version: string;
  readonly key: string;
  /** The registry URI. */
  readonly registry: string;
  readonly bytes: number;
  /** Package identity: SHA-256 of the manifest bytes. */
  readonly id: string;
  /** A `maap.sig` entry is present. It was checked only when trusted keys were given: see `signedBy`. */
  readonly signed: boolean;
  /** Fingerprint of the trusted key whose signature verified. */
  readonly signedBy?: string;
}

export interface PullResult {
  readonly name: string;
  readonly version: string;
  /** Absolute path of the verified package. */
  readonly path: string;
  readonly bytes: number;
  readonly id: string;
  /** A `maap.sig` entry is present. It was checked only when trusted keys were given: see `signedBy`. */
  readonly signed: boolean;
  /** Fingerprint of the trusted key whose signature verified. */
  readonly signedBy?: string;
  readonly manifest: Manifest;
  /** Set when the spec was an alias. */
  readonly alias?: string;
}
