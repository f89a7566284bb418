/**
 * Where telemetry lines go. Powertools' Logger and Metrics print through a private `Console` on stdout/stderr
 * (CloudWatch picks both up on Lambda); a `LineSink` replaces it, so that tests (or another transport) receive
 * each JSON line as a string.
 */
import { format } from 'node:util';

/** Receives one complete line (a JSON document), without the trailing newline. */
export type LineSink = (line: string) => void;

/** The subset of `Console` that powertools prints through. */
export interface SinkConsole {
  log(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  trace(...args: unknown[]): void;
}

/** A console whose every method hands the formatted line to `sink`. */
export function sinkConsole(sink: LineSink): SinkConsole {
  const write = (...args: unknown[]): void =>
    sink(args.length === 1 && typeof args[0] === 'string' ? args[0] : format(...args));
  return { log: write, info: write, warn: write, error: write, debug: write, trace: write };
}

/**
 * Points a powertools Logger or Metrics instance at a sink (every line) or a console. Powertools keeps its
 * console in an instance field named `console` (set in the constructor); this fails loudly if a powertools
 * upgrade renames it.
 */
export function redirectPowertools(instance: object, target: LineSink | SinkConsole): void {
  if (!('console' in instance) || typeof (instance as { console: unknown }).console !== 'object') {
    throw new Error(
      'cannot redirect powertools output: its instance has no console field (powertools changed?)',
    );
  }
  (instance as { console: SinkConsole }).console =
    typeof target === 'function' ? sinkConsole(target) : target;
}

/** The service name powertools conventions use: $POWERTOOLS_SERVICE_NAME, else `maap-predictor`. */
export function serviceName(env: NodeJS.ProcessEnv = process.env): string {
  return env.POWERTOOLS_SERVICE_NAME?.trim() || 'maap-predictor';
}
