export * from './example.ts';
export * from './manifest.ts';
export * from './pack.ts';
export * from './sign.ts';
export * from './sign-package.ts';
export * from './tar-head.ts';
export * from './verify.ts';
