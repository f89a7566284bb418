#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { MaapError } from '../lib/errors.ts';
import { registerPackageCommands } from './commands/package.ts';
import { registerRegistryCommands } from './commands/registry.ts';
import { registerServeCommands } from './commands/serve.ts';

/** Builds the `maap` command line. Exported so that tests can run commands in-process. */
export function createProgram(): Command {
  const program = new Command('maap')
    .description('Model-as-a-Package: pack, sign, publish and serve ONNX models')
    .version('0.1.0')
    .enablePositionalOptions()
    .showHelpAfterError('(run maap --help for usage)')
    .exitOverride();
  registerPackageCommands(program);
  registerRegistryCommands(program);
  registerServeCommands(program);
  return program;
}

/** Runs the CLI; returns the exit code. Errors maap raises on purpose print as one line, without a stack. */
export async function main(argv: string[]): Promise<number> {
  try {
    await createProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof MaapError) {
      process.stderr.write(`maap: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`maap: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 70;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}
