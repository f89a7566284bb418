export * from './app.ts';
export * from './host.ts';
export * from './http.ts';
export * from './protocol.ts';
