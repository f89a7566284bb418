export * from './model-registry.ts';
export * from './registry-defaults.ts';
