export * from './codec.ts';
export * from './datatypes.ts';
export * from './validate.ts';
