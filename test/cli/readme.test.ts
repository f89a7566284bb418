import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { createProgram } from '../../bin/maap.ts';

/** The README's CLI reference rows: `maap <sub> [<sub2>] ... --flag ...`. */
async function documented(): Promise<{ path: string[]; flags: string[] }[]> {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const section =
    readme.split('<!-- cli-reference:start -->')[1]?.split('<!-- cli-reference:end -->')[0] ?? '';
  return [...section.matchAll(/^\| `maap ([^`]+)`/gm)].map(([, usage]) => {
    const words = (usage as string).split(' ');
    const firstArgument = words.findIndex((w) => !/^[a-z]+$/.test(w));
    const path = firstArgument === -1 ? words : words.slice(0, firstArgument);
    return { path, flags: [...(usage as string).matchAll(/--[a-z-]+/g)].map((m) => m[0]) };
  });
}

function leafCommands(command: Command, prefix: string[] = []): { path: string[]; command: Command }[] {
  if (command.commands.length === 0) return [{ path: prefix, command }];
  return command.commands
    .filter((c) => c.name() !== 'help')
    .flatMap((c) => leafCommands(c, [...prefix, c.name()]));
}

describe('the README CLI reference stays true', () => {
  it('documents every command the CLI has, and no other', async () => {
    const rows = await documented();
    const leaves = leafCommands(createProgram()).map((l) => l.path.join(' '));
    expect(rows.map((r) => r.path.join(' ')).sort()).toEqual(leaves.sort());
  });

  it('documents only flags the commands accept, and every flag they accept', async () => {
    const leaves = new Map(leafCommands(createProgram()).map((l) => [l.path.join(' '), l.command]));
    for (const row of await documented()) {
      const command = leaves.get(row.path.join(' '));
      const accepted = (command?.options ?? []).map((o) => o.long as string);
      expect(new Set(row.flags), `maap ${row.path.join(' ')}`).toEqual(new Set(accepted));
    }
  });
});
