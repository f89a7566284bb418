/**
 * Instruction counts from valgrind's callgrind, for the benchmarks' `--instructions` mode: the user-space
 * instructions a process (every thread of it) executes. On a quiet machine repeated counts agree within 1–2%, where
 * wall and CPU times on a shared machine swing by ±30%; beside heavy load they still move (a bare server counted 10%
 * more per request while the test suite ran: V8 compiles on background threads, and code optimised later runs
 * more instructions meanwhile), so compare counts taken in like conditions. What they leave out: kernel time
 * (system calls, page faults), waiting, and how fast the instructions run (cache misses, branch mispredictions),
 * so a ratio of instructions is a floor under the ratio of times, not a replacement for it.
 *
 * Under valgrind a process runs ~50x slower. Work driven by the clock (the request log's timestamp, formatted once
 * per millisecond; its buffered lines, written out every 50 ms) then falls on fewer requests than at full speed,
 * which counts against maap (its metrics are not affected: one EMF document per 100 requests either way).
 */
import { execFile, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** callgrind_control waits for the process to take the command: bounded, in case it never does. */
const CONTROL_TIMEOUT_MS = 60_000;

/** Whether valgrind (with callgrind_control) is installed. */
export function callgrindAvailable(): boolean {
  const probe = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
  return probe('valgrind') && probe('callgrind_control');
}

/**
 * The command line that runs `command args` under callgrind, its counts written to `outFile` (and `outFile.1`,
 * `.2`, ... for each dump asked for), valgrind's own messages to `logFile`. With `collect: false` nothing is counted
 * until `countFrom` switches counting on (a server's start-up and warm-up stay out).
 */
export function callgrindCommand(
  command: string,
  args: readonly string[],
  files: { readonly outFile: string; readonly logFile: string },
  collect = true,
): { command: string; args: string[] } {
  return {
    command: 'valgrind',
    args: [
      '--tool=callgrind',
      `--callgrind-out-file=${files.outFile}`,
      `--log-file=${files.logFile}`,
      ...(collect ? [] : ['--instr-atstart=no']),
      command,
      ...args,
    ],
  };
}

/** Switches counting on in the process `pid` running under callgrind (counts start from zero). */
export async function countFrom(pid: number): Promise<void> {
  await run('callgrind_control', ['--instr=on', String(pid)], { timeout: CONTROL_TIMEOUT_MS });
}

/** Writes the counts so far of process `pid` to its next dump file (`outFile.<n>`) and resets them. */
export async function dumpCounts(pid: number): Promise<void> {
  await run('callgrind_control', ['--dump', String(pid)], { timeout: CONTROL_TIMEOUT_MS });
}

/** The total instructions in a callgrind output file (its `totals:` line). */
export async function totalInstructions(file: string): Promise<number> {
  const text = await readFile(file, 'utf8');
  const line = /^totals:\s+(\d+)/m.exec(text);
  if (!line) throw new Error(`${file} has no totals line: not a callgrind output file?`);
  return Number(line[1]);
}
