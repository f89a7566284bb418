import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tar from 'tar-stream';
import { type PackOptions, type PackResult, packModel } from '../../lib/package/pack.ts';
import type { ModelFixture } from '../fixtures/models.ts';

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(prefix = 'maap-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes a fixture's ONNX bytes and packs them. */
export async function packFixture(
  dir: string,
  fixture: ModelFixture,
  options: Partial<PackOptions> & { name?: string; version?: string } = {},
): Promise<PackResult> {
  const modelPath = join(dir, `${options.name ?? 'model'}-${options.version ?? '1.0.0'}.onnx`);
  await writeFile(modelPath, fixture.bytes);
  return packModel(modelPath, {
    name: 'model',
    version: '1.0.0',
    out: join(dir, `${options.name ?? 'model'}-${options.version ?? '1.0.0'}.maap`),
    ...options,
  });
}

export interface RawEntry {
  header: Partial<tar.Header> & { name: string };
  data: Buffer;
}

/** Reads every entry of a tar file into memory (small test packages only). */
export async function readEntries(path: string): Promise<RawEntry[]> {
  const extract = tar.extract();
  const entries: RawEntry[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      const { name, type, size, mode, mtime, linkname } = entry.header;
      entries.push({ header: { name, type, size, mode, mtime, linkname }, data: Buffer.concat(chunks) });
    }
  })();
  extract.end(await readFile(path));
  await done;
  return entries;
}

/** Writes entries as a tar archive (to craft tampered and hostile packages). */
export async function writeEntries(path: string, entries: RawEntry[]): Promise<void> {
  const archive = tar.pack();
  const chunks: Buffer[] = [];
  archive.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const ended = new Promise<void>((ok) => archive.on('end', () => ok()));
  for (const e of entries) {
    const isFile = (e.header.type ?? 'file') === 'file';
    await new Promise<void>((ok, fail) => {
      const cb = (err?: Error | null) => (err ? fail(err) : ok());
      if (isFile) archive.entry({ ...e.header, size: e.data.length }, e.data, cb);
      else archive.entry({ ...e.header, size: 0 }, cb).end(undefined);
    });
  }
  archive.finalize();
  await ended;
  await writeFile(path, Buffer.concat(chunks));
}

/** Rewrites a package through `transform`, into `out`. */
export async function rewritePackage(
  src: string,
  out: string,
  transform: (entries: RawEntry[]) => RawEntry[],
): Promise<void> {
  await writeEntries(out, transform(await readEntries(src)));
}
