import { randomBytes } from 'node:crypto';
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { registerRegistryCommands } from '../../bin/commands/registry.ts';
import {
  NotFoundError,
  PackageIntegrityError,
  RegistryError,
  SignatureError,
  UsageError,
  VersionExistsError,
} from '../../lib/errors.ts';
import { generateKeyFiles } from '../../lib/package/sign.ts';
import {
  type OpenRegistryOptions,
  openRegistry,
  type Progress,
  type Registry,
} from '../../lib/registry/index.ts';
import { fileIdentity, unchangedStream } from '../../lib/registry/transfer.ts';
import { identityModel, mlpModel } from '../fixtures/models.ts';
import { packFixture, rewritePackage, tempDir } from '../helpers/packages.ts';
import { type S3rverHandle, start as startS3rver } from '../helpers/s3rver.ts';

const MiB = 1024 * 1024;
const VERSIONS = ['1.0.0', '1.4.0', '2.0.0', '2.1.0', '3.0.0-rc.1'] as const;

let work: { dir: string; cleanup: () => Promise<void> };
let s3: S3rverHandle;
/** Package files by `name@version`, plus crafted ones. */
const pkg: Record<string, string> = {};
let modelBytes: Buffer;
let publicKey: string;

beforeAll(async () => {
  work = await tempDir('maap-registry-');
  s3 = await startS3rver();
  const fixture = identityModel('FP32');
  modelBytes = fixture.bytes;
  for (const version of VERSIONS) {
    const packed = await packFixture(work.dir, fixture, {
      name: 'fraud',
      version,
      metrics: { auc: 0.9, f1: 0.8 },
    });
    pkg[`fraud@${version}`] = packed.path;
  }
  // Same name and version as fraud@1.0.0, different content.
  pkg.impostor = (
    await packFixture(join(work.dir), mlpModel(), {
      name: 'fraud',
      version: '1.0.0',
      out: join(work.dir, 'impostor.maap'),
    })
  ).path;
  pkg.tampered = join(work.dir, 'tampered.maap');
  await rewritePackage(pkg['fraud@1.0.0'] as string, pkg.tampered, (entries) =>
    entries.map((e) => (e.header.name === 'model.onnx' ? { ...e, data: tamperModel(e.data) } : e)),
  );
  const blob = join(work.dir, 'weights.bin');
  await writeFile(blob, randomBytes(12 * MiB));
  pkg.big = (await packFixture(work.dir, fixture, { name: 'big', version: '1.0.0', files: [blob] })).path;
  publicKey = (await generateKeyFiles(join(work.dir, 'trusted'))).publicPath;
});

afterAll(async () => {
  await s3?.stop();
  await work?.cleanup();
});

interface Backend {
  readonly label: string;
  open(root: string, options?: OpenRegistryOptions): Registry;
  /** Every file the backend keeps for `root`, hidden and temporary ones included. */
  rawFiles(root: string): Promise<string[]>;
}

const backends: Backend[] = [
  {
    label: 'folder',
    open: (root, options) => openRegistry(join(work.dir, 'registries', root), options),
    rawFiles: (root) => walk(join(work.dir, 'registries', root)),
  },
  {
    label: 's3',
    open: (root, options) =>
      openRegistry(`s3://${s3.bucket}/${root}`, {
        endpoint: s3.endpoint,
        region: s3.region,
        credentials: s3.credentials,
        ...options,
      }),
    rawFiles: (root) => walk(join(s3.directory, s3.bucket, root)),
  },
];

describe.each(backends)('registry on $label', (backend) => {
  let n = 0;
  let root: string;
  let reg: Registry;
  let out: string;
  beforeEach(() => {
    root = `r${++n}`;
    reg = backend.open(root);
    out = join(work.dir, `out-${backend.label}-${n}`);
  });
  afterEach(() => reg.close());

  const push = (id: string, options?: Parameters<Registry['push']>[1]) =>
    reg.push(pkg[id] as string, options);
  const pushAll = async () => {
    for (const v of VERSIONS) await push(`fraud@${v}`);
  };

  it('pushes, lists, resolves and pulls a package byte for byte', async () => {
    const progress: Progress[] = [];
    const pushed = await push('fraud@1.0.0', { onProgress: (p) => progress.push(p) });
    const original = await readFile(pkg['fraud@1.0.0'] as string);
    expect(pushed).toMatchObject({
      name: 'fraud',
      version: '1.0.0',
      key: 'fraud/1.0.0.maap',
      bytes: original.length,
    });
    expect(progress.filter((p) => p.phase === 'upload').at(-1)).toEqual({
      phase: 'upload',
      transferred: original.length,
      total: original.length,
    });

    const [model, ...others] = await reg.list();
    expect(others).toEqual([]);
    expect(model?.name).toBe('fraud');
    expect(model?.versions).toHaveLength(1);
    const v = model?.versions[0];
    expect(v).toMatchObject({
      version: '1.0.0',
      size: original.length,
      metrics: { auc: 0.9, f1: 0.8 },
      id: pushed.id,
    });
    expect(v?.createdAt).toBe(v?.manifest.createdAt);
    expect(v?.pushedAt).toBeInstanceOf(Date);

    expect(await reg.resolve('fraud', '1.0.0')).toMatchObject({ version: '1.0.0', via: 'range' });
    const pulled = await reg.pull('fraud', '^1', join(out, 'x.maap'));
    expect(pulled).toMatchObject({
      name: 'fraud',
      version: '1.0.0',
      bytes: original.length,
      id: pushed.id,
    });
    expect(await readFile(pulled.path)).toEqual(original);
    expect(await walk(out)).toEqual(['x.maap']);
  });

  it('refuses to overwrite an existing version and leaves it unchanged', async () => {
    await push('fraud@1.0.0');
    const before = await reg.store.list('');
    await expect(push('impostor')).rejects.toBeInstanceOf(VersionExistsError);
    expect(await reg.store.list('')).toEqual(before);
    expect(await backend.rawFiles(root)).toEqual(await backendFilesAfterOnePush(backend, root));
    const pulled = await reg.pull('fraud', '1.0.0', join(out, 'again.maap'));
    expect(await readFile(pulled.path)).toEqual(await readFile(pkg['fraud@1.0.0'] as string));
  });

  it('lists the rest of a model when one stored object is unreadable, naming it', async () => {
    await push('fraud@1.0.0');
    await reg.store.putIfAbsent('fraud/2.0.0.maap', Readable.from([Buffer.alloc(2048, 7)]));
    await reg.store.put('fraud/aliases/broken.json', '{"version": 1}');
    const [model] = await reg.list('fraud');
    expect(model?.versions.map((v) => v.version)).toEqual(['1.0.0']);
    expect(model?.problems.map((p) => p.key).sort()).toEqual([
      'fraud/2.0.0.maap',
      'fraud/aliases/broken.json',
    ]);
    expect(model?.problems.find((p) => p.key === 'fraud/2.0.0.maap')?.error).toMatch(
      /fraud\/2.0.0.maap in .*corrupt tar header/,
    );
  });

  it('refuses a tampered package and writes nothing', async () => {
    await expect(push('tampered')).rejects.toBeInstanceOf(PackageIntegrityError);
    expect(await reg.store.list('')).toEqual([]);
    expect(await backend.rawFiles(root)).toEqual([]);
  });

  it('refuses a package that changed after it was verified and writes nothing', async () => {
    const path = pkg['fraud@1.0.0'] as string;
    const verifiedState = await fileIdentity(path);
    await utimes(path, new Date(), new Date(Date.now() + 5000)); // the file is written after verification
    const stale = unchangedStream(path, verifiedState);
    await expect(reg.store.putIfAbsent('fraud/1.0.0.maap', stale)).rejects.toBeInstanceOf(
      PackageIntegrityError,
    );
    expect(await backend.rawFiles(root)).toEqual([]);
  });

  it('refuses an unsigned package when trusted keys are required and writes nothing', async () => {
    await expect(push('fraud@1.0.0', { trustedKeys: [publicKey] })).rejects.toBeInstanceOf(SignatureError);
    expect(await backend.rawFiles(root)).toEqual([]);
  });

  it('resolves exact versions, ranges, latest, prereleases and aliases', async () => {
    await pushAll();
    expect(await reg.versions('fraud')).toEqual([...VERSIONS]);
    const version = async (spec?: string) => (await reg.resolve('fraud', spec)).version;
    expect(await version('^1')).toBe('1.4.0');
    expect(await version('>=1.2 <2')).toBe('1.4.0');
    expect(await version('^2')).toBe('2.1.0');
    expect(await version('*')).toBe('2.1.0');
    expect(await version('latest')).toBe('2.1.0');
    expect(await version()).toBe('2.1.0');
    expect(await version('2.0.0')).toBe('2.0.0');
    expect(await version('3.0.0-rc.1')).toBe('3.0.0-rc.1');
    expect(await version('>=3.0.0-rc.0')).toBe('3.0.0-rc.1');

    const set = await reg.setAlias('fraud', 'production', '1.4.0');
    expect(set).toMatchObject({ name: 'fraud', alias: 'production', version: '1.4.0' });
    expect(set).not.toHaveProperty('previous');
    expect(await reg.resolve('fraud', 'production')).toMatchObject({
      version: '1.4.0',
      via: 'alias',
      alias: 'production',
    });
    const moved = await reg.setAlias('fraud', 'production', '2.0.0');
    expect(moved).toMatchObject({ version: '2.0.0', previous: '1.4.0' });
    expect(moved.by).toMatch(/.+/);
    await reg.setAlias('fraud', 'canary', '3.0.0-rc.1');
    expect((await reg.listAliases('fraud')).map((a) => [a.alias, a.version])).toEqual([
      ['canary', '3.0.0-rc.1'],
      ['production', '2.0.0'],
    ]);
    expect(await reg.getAlias('fraud', 'production')).toMatchObject({
      name: 'fraud',
      alias: 'production',
      version: '2.0.0',
    });
    const pulled = await reg.pull('fraud', 'canary', join(out, 'c.maap'));
    expect(pulled).toMatchObject({ version: '3.0.0-rc.1', alias: 'canary' });
    const [model] = await reg.list('fraud');
    expect(model?.versions.map((v) => v.version)).toEqual([...VERSIONS]);
    expect(model?.aliases.map((a) => a.alias)).toEqual(['canary', 'production']);
  });

  it('says latest is not found when only prereleases exist', async () => {
    await push('fraud@3.0.0-rc.1');
    await expect(reg.resolve('fraud', 'latest')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('raises NotFoundError for an unknown model, version or alias', async () => {
    await push('fraud@1.0.0');
    await expect(reg.resolve('ghost', 'latest')).rejects.toBeInstanceOf(NotFoundError);
    await expect(reg.list('ghost')).rejects.toBeInstanceOf(NotFoundError);
    await expect(reg.resolve('fraud', '^9')).rejects.toBeInstanceOf(NotFoundError);
    await expect(reg.resolve('fraud', 'staging')).rejects.toBeInstanceOf(NotFoundError);
    await expect(reg.getAlias('fraud', 'staging')).rejects.toBeInstanceOf(NotFoundError);
    await expect(reg.version('fraud', '9.9.9')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses to pull an unknown model and writes nothing', async () => {
    await expect(reg.pull('ghost', 'latest', join(out, 'g.maap'))).rejects.toBeInstanceOf(NotFoundError);
    expect(await walk(out)).toEqual([]);
  });

  it('refuses an alias to a missing version and writes nothing', async () => {
    await push('fraud@1.0.0');
    const before = await backend.rawFiles(root);
    await expect(reg.setAlias('fraud', 'production', '9.9.9')).rejects.toBeInstanceOf(NotFoundError);
    expect(await backend.rawFiles(root)).toEqual(before);
  });

  it.each(['latest', 'v1', '1.0.0', '^2', 'x', 'Prod', '-a', 'a_b'])(
    'refuses the alias name %j and writes nothing',
    async (alias) => {
      await push('fraud@1.0.0');
      const before = await backend.rawFiles(root);
      await expect(reg.setAlias('fraud', alias, '1.0.0')).rejects.toBeInstanceOf(UsageError);
      expect(await backend.rawFiles(root)).toEqual(before);
    },
  );

  it('refuses a bad model name or spec with UsageError', async () => {
    await expect(reg.resolve('Fraud', 'latest')).rejects.toBeInstanceOf(UsageError);
    await expect(reg.resolve('fraud', 'Bad_Name')).rejects.toBeInstanceOf(UsageError);
    await expect(reg.setAlias('fraud', 'production', '^1')).rejects.toBeInstanceOf(UsageError);
    expect(await backend.rawFiles(root)).toEqual([]);
  });

  it('refuses to pull a package tampered inside the registry and leaves no file behind', async () => {
    const pushed = await push('fraud@1.0.0');
    const bytes = await readFile(pkg['fraud@1.0.0'] as string);
    const at = bytes.indexOf(modelBytes);
    expect(at).toBeGreaterThan(0);
    const tampered = Buffer.concat([
      bytes.subarray(0, at),
      tamperModel(modelBytes),
      bytes.subarray(at + modelBytes.length),
    ]);
    expect(tampered.length).toBe(bytes.length);
    await reg.store.put(pushed.key, tampered);
    await expect(reg.pull('fraud', '1.0.0', join(out, 'bad.maap'))).rejects.toBeInstanceOf(
      PackageIntegrityError,
    );
    expect(await walk(out)).toEqual([]);
  });

  it.each([
    ['small', 1 * MiB],
    ['multipart', 11 * MiB],
  ])('leaves no visible version when a %s upload fails midway', async (_, failAfter) => {
    const reg5 = backend.open(root, { partSize: 5 * MiB });
    try {
      const source = failingStream(failAfter);
      await expect(reg5.store.putIfAbsent('fraud/1.0.0.maap', source)).rejects.toBeInstanceOf(RegistryError);
      expect(await reg5.store.list('')).toEqual([]);
      expect(await reg5.store.head('fraud/1.0.0.maap')).toBeUndefined();
      expect(await reg5.versions('fraud')).toEqual([]);
      expect(await backend.rawFiles(root)).toEqual([]);
    } finally {
      await reg5.close();
    }
  });

  it('uploads a large package in parts and pulls it back intact', async () => {
    const reg5 = backend.open(root, { partSize: 5 * MiB });
    try {
      const uploads: number[] = [];
      const pushed = await reg5.push(pkg.big as string, {
        onProgress: (p) => p.phase === 'upload' && uploads.push(p.transferred),
      });
      expect(pushed.bytes).toBeGreaterThan(11 * MiB);
      expect(uploads.length).toBeGreaterThanOrEqual(3); // one event per part on S3, per chunk on a folder
      expect(uploads.at(-1)).toBe(pushed.bytes);
      const pulled = await reg5.pull('big', 'latest', join(out, 'big.maap'));
      expect(pulled.id).toBe(pushed.id);
      expect((await readFile(pulled.path)).equals(await readFile(pkg.big as string))).toBe(true);
      expect((await reg5.list('big'))[0]?.versions[0]?.size).toBe(pushed.bytes);
    } finally {
      await reg5.close();
    }
  });
});

describe('S3 errors', () => {
  it('maps an unknown access key and a missing bucket to RegistryError with a clear message', async () => {
    const denied = openRegistry(`s3://${s3.bucket}/x`, {
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: 'NOBODY', secretAccessKey: 'nope' },
    });
    const missing = openRegistry('s3://no-such-bucket/x', {
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: s3.credentials,
    });
    try {
      await expect(denied.list()).rejects.toThrow(/access denied/);
      await expect(denied.list()).rejects.toBeInstanceOf(RegistryError);
      await expect(missing.list()).rejects.toThrow(/bucket "no-such-bucket" does not exist/);
      await expect(missing.push(pkg['fraud@1.0.0'] as string)).rejects.toBeInstanceOf(RegistryError);
    } finally {
      await denied.close();
      await missing.close();
    }
  });
});

describe('CLI', () => {
  it('pushes, lists, aliases and pulls with --json', async () => {
    const registry = join(work.dir, 'registries', 'cli');
    const lines: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
    const run = async (...args: string[]) => {
      const program = new Command().exitOverride();
      registerRegistryCommands(program);
      lines.length = 0;
      await program.parseAsync([...args, '--registry', registry, '--json'], { from: 'user' });
      return lines.map((l) => JSON.parse(l));
    };
    try {
      expect(await run('push', pkg['fraud@1.0.0'] as string)).toMatchObject([
        { name: 'fraud', version: '1.0.0' },
      ]);
      await run('push', pkg['fraud@1.4.0'] as string);
      await expect(run('push', pkg['fraud@1.4.0'] as string)).rejects.toBeInstanceOf(VersionExistsError);
      expect(await run('alias', 'set', 'fraud', 'production', '^1')).toMatchObject([
        { alias: 'production', version: '1.4.0' },
      ]);
      expect(await run('alias', 'get', 'fraud', 'production')).toMatchObject([{ version: '1.4.0' }]);
      const [listing] = await run('ls', 'fraud');
      expect(listing.versions.map((v: { version: string }) => v.version)).toEqual(['1.0.0', '1.4.0']);
      expect(listing.versions[1].aliases).toEqual(['production']);
      const out = join(work.dir, 'cli-out', 'p.maap');
      expect(await run('pull', 'fraud@production', '--out', out)).toMatchObject([
        { version: '1.4.0', path: out },
      ]);
      expect(await readFile(out)).toEqual(await readFile(pkg['fraud@1.4.0'] as string));
    } finally {
      log.mockRestore();
    }
  });
});

describe('openRegistry', () => {
  it('picks the argument, then MAAP_REGISTRY, then ./.maap/registry', () => {
    const cwd = '/srv/app';
    expect(openRegistry(undefined, { cwd, env: {} }).uri).toBe('/srv/app/.maap/registry');
    expect(openRegistry(undefined, { cwd, env: { MAAP_REGISTRY: 'regs/a' } }).uri).toBe('/srv/app/regs/a');
    expect(openRegistry('file:///data/reg', { cwd, env: { MAAP_REGISTRY: 'regs/a' } }).uri).toBe('/data/reg');
    expect(openRegistry('s3://bucket/some/prefix/', { env: {} }).uri).toBe('s3://bucket/some/prefix');
  });

  it('refuses malformed registry URIs', () => {
    expect(() => openRegistry('http://example.com/reg', { env: {} })).toThrow(UsageError);
    expect(() => openRegistry('s3://', { env: {} })).toThrow(UsageError);
    expect(() => openRegistry('s3://bucket/../x', { env: {} })).toThrow(UsageError);
    // A mistyped S3 URI is not taken for a folder (whose package would then be 'not found').
    expect(() => openRegistry('s3:/maap-test/models', { env: {} })).toThrow(
      'invalid registry "s3:/maap-test/models": expected s3://bucket[/prefix]: did you mean s3://maap-test/models? (a folder whose name starts with s3: is ./s3:/maap-test/models)',
    );
    expect(() => openRegistry('S3://maap-test', { env: {} })).toThrow(/did you mean s3:\/\/maap-test\?/);
    expect(() => openRegistry('gs://bucket/reg', { env: {} })).toThrow(
      /^unsupported registry URI "gs:\/\/bucket\/reg"/,
    );
    // file: URIs in any case, and only the absolute form (file:relative would resolve against the root).
    expect(openRegistry('FILE:///data/reg', { env: {} }).uri).toBe('/data/reg');
    expect(() => openRegistry('file:relative', { env: {} })).toThrow(/expected file:\/\/\/absolute\/path$/);
    expect(() => openRegistry('File:/srv/r', { env: {} })).toThrow(/expected file:\/\/\/absolute\/path$/);
    // Folders: a drive letter, a colon in the name (as Linux allows), an s3: folder written ./s3:...
    const cwd = '/srv/app';
    expect(openRegistry('C:/regs', { cwd, env: {} }).uri).toMatch(/C:\/regs$/);
    expect(openRegistry('regs/a:b', { cwd, env: {} }).uri).toBe('/srv/app/regs/a:b');
    expect(openRegistry('models:v1', { cwd, env: {} }).uri).toBe('/srv/app/models:v1');
    expect(openRegistry('./s3:backup', { cwd, env: {} }).uri).toBe('/srv/app/s3:backup');
  });
});

/** A stream that produces `bytes` bytes, then fails. */
function failingStream(bytes: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= bytes) {
        this.destroy(new Error('connection lost'));
        return;
      }
      const chunk = Math.min(256 * 1024, bytes - sent);
      sent += chunk;
      this.push(randomBytes(chunk));
    },
  });
}

/** Alters the graph name inside ONNX bytes: still a valid model, but no longer the bytes the manifest hashed. */
function tamperModel(data: Buffer): Buffer {
  const at = data.indexOf('identity');
  if (at < 0) throw new Error('graph name not found in the fixture');
  const copy = Buffer.from(data);
  copy.write('identitz', at);
  return copy;
}

/** Relative paths of every file under `dir` (hidden ones included); empty when `dir` does not exist. */
async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name).slice(dir.length + 1))
    .sort();
}

/** What the backend holds after pushing fraud@1.0.0 once: the object, plus s3rver's metadata files. */
async function backendFilesAfterOnePush(backend: Backend, _root: string): Promise<string[]> {
  return backend.label === 'folder'
    ? ['fraud/1.0.0.maap']
    : [
        'fraud/1.0.0.maap._S3rver_metadata.json',
        'fraud/1.0.0.maap._S3rver_object',
        'fraud/1.0.0.maap._S3rver_object.md5',
      ];
}
