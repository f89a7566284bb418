export * from './errors.ts';
export * from './inference/index.ts';
export * from './onnx/index.ts';
export * from './package/index.ts';
export * from './registry/index.ts';
export * from './serving/index.ts';
export * from './telemetry/index.ts';
