export {
  type AttributeValue,
  encodeModel,
  type GraphSpec,
  type Initializer,
  type ModelSpec,
  type NodeSpec,
  type ValueInfo,
  writeModelFile,
} from './builder.ts';
export * from './compat.ts';
export * from './inspect.ts';
