import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import semver from 'semver';
import {
  type ModelInfo,
  openRegistry,
  type Progress,
  parseModelRef,
  type Registry,
} from '../../lib/registry/index.ts';
import { createProgress, type ProgressDisplay } from '../progress.ts';
import { formatBytes } from './format.ts';

const REGISTRY_HELP =
  'registry: s3://bucket/prefix, file:///path or a folder (default: $MAAP_REGISTRY, else ./.maap/registry)';
const collect = (value: string, previous: string[] = []) => [...previous, value];

interface CommonOptions {
  registry?: string;
  json?: boolean;
}

/** Adds `push`, `ls`, `pull` and `alias set|get|ls` to the CLI. */
export function registerRegistryCommands(program: Command): void {
  program
    .command('push')
    .description('verify a package and upload it to the registry (an existing version is never overwritten)')
    .argument('<pkg>', 'a .maap file')
    .option('--registry <uri>', REGISTRY_HELP)
    .option(
      '--trusted-key <pub>',
      'Ed25519 public key the package must be signed with (repeatable)',
      collect,
      [],
    )
    .option('--json', 'print the result as one JSON line')
    .action(async (pkg: string, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals<CommonOptions & { trustedKey: string[] }>();
      await withRegistry(opts, async (registry) => {
        const progress = transferProgress(opts.json);
        const result = await registry
          .push(pkg, { trustedKeys: opts.trustedKey, onProgress: progress.onProgress })
          .finally(progress.stop);
        if (opts.json) print(result);
        else {
          const size = formatBytes(result.bytes);
          console.log(
            `pushed ${result.name}@${result.version} to ${result.registry} (${size}, ${signature(result)}, id ${result.id.slice(0, 16)})`,
          );
        }
      });
    });

  program
    .command('ls')
    .alias('list')
    .description('list the models in the registry, or the versions of one model')
    .argument('[name]', 'a model name')
    .option('--registry <uri>', REGISTRY_HELP)
    .option('--json', 'print the listing as JSON')
    .action(async (name: string | undefined, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals<CommonOptions>();
      await withRegistry(opts, async (registry) => {
        const models = await registry.list(name);
        if (opts.json) print(name === undefined ? models.map(modelJson) : modelJson(models[0] as ModelInfo));
        else if (name === undefined) printModels(models, registry.uri);
        else printVersions(models[0] as ModelInfo);
        for (const problem of models.flatMap((m) => m.problems)) {
          process.stderr.write(`maap: warning: skipped ${problem.key}: ${problem.error}\n`);
        }
      });
    });

  program
    .command('pull')
    .description('download a package, verified: name, name@version, name@range (^2) or name@alias')
    .argument('<ref>', 'model reference, e.g. fraud, fraud@1.4.0, fraud@^2, fraud@production')
    .option('--out <file>', 'output file (default: ./<name>-<version>.maap)')
    .option('--registry <uri>', REGISTRY_HELP)
    .option(
      '--trusted-key <pub>',
      'Ed25519 public key the package must be signed with (repeatable)',
      collect,
      [],
    )
    .option('--json', 'print the result as one JSON line')
    .action(async (ref: string, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals<CommonOptions & { out?: string; trustedKey: string[] }>();
      const { name, spec } = parseModelRef(ref);
      await withRegistry(opts, async (registry) => {
        const progress = transferProgress(opts.json);
        const result = await registry
          .pull(name, spec, opts.out, { trustedKeys: opts.trustedKey, onProgress: progress.onProgress })
          .finally(progress.stop);
        if (opts.json) {
          const { manifest: _manifest, ...rest } = result;
          print(rest);
        } else {
          const via = result.alias ? ` (alias ${result.alias})` : '';
          console.log(
            `pulled ${name}@${result.version}${via} → ${result.path} (${formatBytes(result.bytes)}, verified, ${signature(result)})`,
          );
        }
      });
    });

  const alias = program.command('alias').description('named pointers to versions: production, staging, ...');
  alias
    .command('set')
    .description('point an alias at a version (or at what a range, latest or another alias resolves to)')
    .argument('<name>', 'model name')
    .argument('<alias>', 'alias name, e.g. production')
    .argument('<version>', 'an existing version, e.g. 1.4.0 (or ^1, latest, staging)')
    .option('--registry <uri>', REGISTRY_HELP)
    .option('--json', 'print the result as one JSON line')
    .action(async (name: string, aliasName: string, target: string, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals<CommonOptions>();
      await withRegistry(opts, async (registry) => {
        const version =
          semver.valid(target) === target ? target : (await registry.resolve(name, target)).version;
        const result = await registry.setAlias(name, aliasName, version);
        if (opts.json) print(result);
        else {
          const was =
            result.previous === undefined
              ? 'new'
              : result.previous === version
                ? 'unchanged'
                : `was ${result.previous}`;
          console.log(`${name}@${aliasName} → ${version} (${was})`);
        }
      });
    });

  alias
    .command('get')
    .description('show the version an alias points to')
    .argument('<name>', 'model name')
    .argument('<alias>', 'alias name')
    .option('--registry <uri>', REGISTRY_HELP)
    .option('--json', 'print the alias as JSON')
    .action(async (name: string, aliasName: string, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals<CommonOptions>();
      await withRegistry(opts, async (registry) => {
        const record = await registry.getAlias(name, aliasName);
        if (opts.json) print(record);
        else
          console.log(`${name}@${aliasName} → ${record.version} (set ${record.updatedAt} by ${record.by})`);
      });
    });

  alias
    .command('ls')
    .alias('list')
    .description("list a model's aliases")
    .argument('<name>', 'model name')
    .option('--registry <uri>', REGISTRY_HELP)
    .option('--json', 'print the aliases as JSON')
    .action(async (name: string, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals<CommonOptions>();
      await withRegistry(opts, async (registry) => {
        const records = await registry.listAliases(name);
        if (opts.json) print(records);
        else if (records.length === 0) console.log(`${name} has no aliases`);
        else
          table([
            ['ALIAS', 'VERSION', 'UPDATED', 'BY'],
            ...records.map((r) => [r.alias, r.version, r.updatedAt, r.by]),
          ]);
      });
    });
}

async function withRegistry(opts: CommonOptions, fn: (registry: Registry) => Promise<void>): Promise<void> {
  const registry = openRegistry(opts.registry);
  try {
    await fn(registry);
  } finally {
    await registry.close();
  }
}

/** One progress bar per phase (verify, upload, download), silent off a terminal or with --json. */
function transferProgress(json: boolean | undefined): {
  onProgress: (p: Progress) => void;
  stop: () => void;
} {
  let current: { phase: Progress['phase']; display: ProgressDisplay } | undefined;
  return {
    onProgress(p) {
      if (current?.phase !== p.phase) {
        current?.display.stop();
        current = { phase: p.phase, display: createProgress(p.phase, p.total, { json }) };
      }
      current.display.update(p.transferred, p.total);
    },
    stop() {
      current?.display.stop();
    },
  };
}

function modelJson(model: ModelInfo) {
  return {
    name: model.name,
    versions: model.versions.map((v) => ({
      version: v.version,
      createdAt: v.createdAt,
      pushedAt: v.pushedAt.toISOString(),
      size: v.size,
      metrics: v.metrics,
      id: v.id,
      aliases: model.aliases.filter((a) => a.version === v.version).map((a) => a.alias),
    })),
    aliases: model.aliases.map(({ alias, version, updatedAt, by }) => ({ alias, version, updatedAt, by })),
    problems: model.problems,
  };
}

/** How a transfer's signature stands: checked against a trusted key, present but unchecked, or absent. */
function signature(result: { signed: boolean; signedBy?: string }): string {
  if (result.signedBy) return `signed by ${result.signedBy}`;
  return result.signed ? 'signature not checked: no --trusted-key' : 'unsigned';
}

function printModels(models: readonly ModelInfo[], uri: string): void {
  if (models.length === 0) {
    const missing = !uri.startsWith('s3://') && !existsSync(uri);
    console.log(missing ? `no models: the registry folder ${uri} does not exist yet` : `no models in ${uri}`);
    return;
  }
  const rows = models.map((m) => {
    const stable = m.versions.filter((v) => semver.prerelease(v.version) === null);
    const latest = stable[stable.length - 1] ?? m.versions[m.versions.length - 1];
    const aliases = m.aliases.map((a) => `${a.alias}→${a.version}`).join(' ');
    return [m.name, String(m.versions.length), latest?.version ?? '-', latest?.createdAt ?? '-', aliases];
  });
  table([['NAME', 'VERSIONS', 'LATEST', 'CREATED', 'ALIASES'], ...rows]);
}

function printVersions(model: ModelInfo): void {
  const rows = model.versions.map((v) => [
    v.version,
    v.createdAt,
    formatBytes(v.size),
    Object.entries(v.metrics)
      .slice(0, 4)
      .map(([k, n]) => `${k}=${Number(n.toPrecision(4))}`)
      .join(' '),
    model.aliases
      .filter((a) => a.version === v.version)
      .map((a) => a.alias)
      .join(','),
  ]);
  table([['VERSION', 'CREATED', 'SIZE', 'METRICS', 'ALIASES'], ...rows]);
}

function table(rows: readonly string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows)
    console.log(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
}

function print(value: unknown): void {
  console.log(JSON.stringify(value));
}
