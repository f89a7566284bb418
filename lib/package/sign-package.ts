import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { MaapError, PackageIntegrityError } from '../errors.ts';
import { SIGNATURE_PATH } from './manifest.ts';
import { keyFingerprint, loadPrivateKey, signManifest } from './sign.ts';
import { verifyPackage } from './verify.ts';

/**
 * Signs an existing package: verifies it whole, then rewrites it with a fresh maap.sig as the last entry
 * (replacing any earlier signature). The file is replaced atomically; on failure it is left as it was.
 */
export async function signPackage(
  path: string,
  key: string | KeyObject,
): Promise<{ id: string; signedBy: string }> {
  const privateKey = await loadPrivateKey(key);
  const verified = await verifyPackage(path);
  const signature = signManifest(verified.manifestBytes, privateKey);
  const target = resolve(path);
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const extract = tar.extract();
    const archive = tar.pack();
    const written = pipeline(archive, createWriteStream(temp, { flags: 'wx' }));
    const read = pipeline(createReadStream(target), extract);
    let mtime = new Date();
    for await (const entry of extract) {
      const { header } = entry;
      if (header.name === SIGNATURE_PATH) {
        entry.resume();
        continue;
      }
      mtime = header.mtime;
      await new Promise<void>((ok, fail) => {
        const sink = archive.entry({ ...header, pax: undefined }, (err) => (err ? fail(err) : ok()));
        entry.pipe(sink);
      });
    }
    await read;
    await new Promise<void>((ok, fail) =>
      archive.entry(
        {
          name: SIGNATURE_PATH,
          size: signature.length,
          mode: 0o644,
          mtime,
          uid: 0,
          gid: 0,
          uname: '',
          gname: '',
        },
        signature,
        (err) => (err ? fail(err) : ok()),
      ),
    );
    archive.finalize();
    await written;
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err instanceof MaapError
      ? err
      : new PackageIntegrityError(`cannot sign ${path}: ${(err as Error).message}`, { cause: err });
  }
  return { id: verified.id, signedBy: keyFingerprint(privateKey) };
}
