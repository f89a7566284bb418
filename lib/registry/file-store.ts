import { randomBytes } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import { link, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MaapError, NotFoundError, RegistryError } from '../errors.ts';
import { fsyncFile } from '../package/atomic-file.ts';
import { checkKey, type GetOptions, type ObjectInfo, type PutOptions, type Store } from './store.ts';

/**
 * A registry in a local folder. Writes go to a hidden temporary file in the target folder, are fsynced, and
 * are then published atomically: `link()` for immutable objects (it fails with EEXIST when the name is taken,
 * which makes put-if-absent atomic even between processes) and `rename()` for mutable ones. A crash leaves
 * only hidden `.*.tmp` files, which listings ignore.
 */
export class FileStore implements Store {
  readonly root: string;
  readonly uri: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.uri = this.root;
  }

  private path(key: string): string {
    return join(this.root, ...checkKey(key).split('/'));
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const file = this.path(key);
    const handle = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR' || err.code === 'EISDIR') {
        throw new NotFoundError(`"${key}" not found in registry ${this.uri}`);
      }
      throw fsError('read', file, err);
    });
    const { start, end } = options.range ?? {};
    return handle.createReadStream({ start, end });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const file = this.path(key);
    try {
      const st = await stat(file);
      return st.isFile() ? { key, size: st.size, mtime: st.mtime } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw fsError('stat', file, err);
    }
  }

  async putIfAbsent(key: string, body: Readable, options: PutOptions = {}): Promise<boolean> {
    const target = this.path(key);
    if (await this.head(key)) {
      body.destroy();
      return false;
    }
    const temp = await this.tempFor(target);
    try {
      let transferred = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          transferred += chunk.length;
          options.onProgress?.(transferred);
          callback(null, chunk);
        },
      });
      try {
        await pipeline(body, counter, createWriteStream(temp, { flags: 'wx' }));
        await fsyncFile(temp);
      } catch (err) {
        if (err instanceof MaapError) throw err;
        throw new RegistryError(`upload of "${key}" to ${this.uri} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      try {
        await link(temp, target);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') return false;
        // File systems without hard links: publish by rename after a last check (a narrow race window).
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP')
          throw fsError('publish', target, err);
        if (await this.head(key)) return false;
        await rename(temp, target);
      }
      await fsyncDir(dirname(target));
      return true;
    } finally {
      body.destroy();
      await unlink(temp).catch(() => {});
    }
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const target = this.path(key);
    const temp = await this.tempFor(target);
    try {
      const handle = await open(temp, 'wx');
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
      await fsyncDir(dirname(target));
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err instanceof RegistryError ? err : fsError('write', target, err);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const slash = prefix.lastIndexOf('/');
    const base = slash >= 0 ? prefix.slice(0, slash) : '';
    if (base !== '') checkKey(base);
    const out: ObjectInfo[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await readdir(rel ? join(this.root, ...rel.split('/')) : this.root, {
          withFileTypes: true,
        });
      } catch (err) {
        if (isMissing(err)) return;
        throw fsError('list', join(this.root, rel), err);
      }
      for (const entry of entries) {
        if (entry.name.startsWith('.')) continue; // temporary files, and anything else hidden
        const key = rel ? `${rel}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) await walk(key);
        } else if (entry.isFile() && key.startsWith(prefix)) {
          const info = await this.head(key);
          if (info) out.push(info);
        }
      }
    };
    await walk(base);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const file = this.path(key);
    await unlink(file).catch((err) => {
      if (!isMissing(err)) throw fsError('delete', file, err);
    });
  }

  async close(): Promise<void> {}

  /** A fresh hidden temporary name next to `target` (same folder, so link/rename stay on one file system). */
  private async tempFor(target: string): Promise<string> {
    const dir = dirname(target);
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw fsError('create folder', dir, err);
    }
    return join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  }
}

/** Makes a new directory entry durable. Best effort: not every platform can fsync a directory. */
async function fsyncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // ignored: e.g. Windows, or file systems that refuse fsync on directories
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function fsError(action: string, path: string, err: unknown): RegistryError {
  const e = err as NodeJS.ErrnoException;
  const where = path.split(sep).join('/');
  return new RegistryError(`cannot ${action} ${where}: ${e?.message ?? String(err)}`, { cause: err });
}
