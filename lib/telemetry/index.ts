export * from './output.ts';
export * from './plain-powertools.ts';
export * from './request-log.ts';
export * from './request-metrics.ts';
export * from './request-record.ts';
export * from './server.ts';
export * from './sink.ts';
