export { AliasBook, actor } from './aliases.ts';
export { FileStore } from './file-store.ts';
export { DEFAULT_REGISTRY, type OpenRegistryOptions, openRegistry } from './open.ts';
export {
  ALIAS_PATTERN,
  checkAliasName,
  checkModelName,
  checkVersion,
  classifySpec,
  isAliasName,
  LATEST,
  type ModelRef,
  parseModelRef,
} from './ref.ts';
export { Registry } from './registry.ts';
export { parseS3Uri, S3Store, type S3StoreOptions } from './s3-store.ts';
export type { GetOptions, ObjectInfo, PutOptions, Store } from './store.ts';
export type {
  AliasDocument,
  AliasRecord,
  AliasUpdate,
  ModelInfo,
  Progress,
  PullResult,
  PushResult,
  Resolved,
  TransferOptions,
  VersionInfo,
} from './types.ts';
