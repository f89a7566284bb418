/**
 * Milliseconds since an arbitrary origin, for measuring durations: `process.hrtime`, not `performance.now()`,
 * whose first use loads Node's perf_hooks machinery (about 1.5 ms of a Lambda cold start here).
 */
export function nowMs(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1e3 + nanoseconds / 1e6;
}
