export * from './codec.ts';
export * from './datatypes.ts';
export * from './model.ts';
export * from './model-errors.ts';
export * from './package-source.ts';
export * from './smoke.ts';
export * from './validate.ts';
