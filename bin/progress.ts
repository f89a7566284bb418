import cliProgress from 'cli-progress';
import { formatBytes } from './commands/format.ts';

/** A byte-counting progress display: a bar on a terminal, nothing otherwise. */
export interface ProgressDisplay {
  /** Bytes done so far; `total` updates the expected total (when it was unknown at creation). */
  update(bytes: number, total?: number): void;
  /** Removes the bar. Safe to call more than once, and when nothing was shown. */
  stop(): void;
}

export interface ProgressOptions {
  /** Machine-readable output was asked for: never draw. */
  readonly json?: boolean;
  /** Where the bar goes. @default process.stderr */
  readonly stream?: NodeJS.WriteStream;
  /** Force the bar on or off; by default it shows only when `stream` is a terminal and `json` is off. */
  readonly enabled?: boolean;
  /** Transfers that finish sooner than this never show a bar. @default 250 ms */
  readonly delayMs?: number;
}

const SILENT: ProgressDisplay = { update() {}, stop() {} };

/**
 * Creates a progress display for a transfer of `totalBytes` (0 when unknown yet). Shows a bar on stderr only
 * when stderr is a TTY and `--json` is not set, so pipes, CI logs and JSON output stay clean.
 */
export function createProgress(
  label: string,
  totalBytes: number,
  options: ProgressOptions = {},
): ProgressDisplay {
  const stream = options.stream ?? process.stderr;
  const enabled = options.enabled ?? (!options.json && stream.isTTY === true);
  if (!enabled) return SILENT;
  const delayMs = options.delayMs ?? 250;
  const started = Date.now();
  let total = totalBytes;
  let bar: cliProgress.SingleBar | undefined;
  let stopped = false;

  const payload = (bytes: number) => {
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    return {
      label,
      done: formatBytes(bytes),
      size: total > 0 ? formatBytes(total) : '?',
      speed: `${formatBytes(bytes / seconds)}/s`,
    };
  };

  return {
    update(bytes: number, newTotal?: number) {
      if (stopped) return;
      if (newTotal !== undefined && newTotal > 0) total = newTotal;
      if (!bar) {
        if (Date.now() - started < delayMs) return;
        bar = new cliProgress.SingleBar(
          {
            format: '{label} [{bar}] {percentage}% | {done}/{size} | {speed} | ETA {eta_formatted}',
            stream,
            hideCursor: true,
            clearOnComplete: true,
            barsize: 28,
            etaBuffer: 50,
            fps: 10,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(total, bytes, 1), bytes, payload(bytes));
        return;
      }
      if (total > 0 && bar.getTotal() !== total) bar.setTotal(total);
      bar.update(bytes, payload(bytes));
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar?.stop();
    },
  };
}
