import type { KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { MaapError, PackageIntegrityError } from '../errors.ts';
import { createAtomicFile } from './atomic-file.ts';
import { SIGNATURE_PATH } from './manifest.ts';
import { keyFingerprint, loadPrivateKey, signManifest } from './sign.ts';
import { TarReader } from './tar-reader.ts';
import { endOfArchive, ustarEntry } from './tar-writer.ts';
import { verifyPackage } from './verify.ts';

/**
 * Signs an existing package: verifies it whole, then rewrites it as its own bytes up to its signature (or its
 * end-of-archive marker) followed by a fresh maap.sig and a new marker. Every other byte is unchanged, so the
 * package identity stays the same. The file is replaced atomically; on failure it is left as it was.
 */
export async function signPackage(
  path: string,
  key: string | KeyObject,
): Promise<{ id: string; signedBy: string }> {
  const privateKey = await loadPrivateKey(key);
  const target = resolve(path);
  const verified = await verifyPackage(target);
  const signature = signManifest(verified.manifestBytes, privateKey);
  const keep = await bytesBeforeSignature(target);
  const tail = signatureEntry(signature, new Date(verified.manifest.createdAt));
  const file = await createAtomicFile(target);
  try {
    await pipeline(createReadStream(target, { start: 0, end: keep - 1 }), file.stream, { end: false });
    await new Promise<void>((ok, fail) =>
      file.stream.end(tail, (err?: Error | null) => (err ? fail(err) : ok())),
    );
    await file.commit();
  } catch (err) {
    await file.discard();
    throw err instanceof MaapError
      ? err
      : new PackageIntegrityError(`cannot sign ${path}: ${(err as Error).message}`, { cause: err });
  }
  return { id: verified.id, signedBy: keyFingerprint(privateKey) };
}

/** Where the package's signature entry starts, or else its end-of-archive marker. */
async function bytesBeforeSignature(path: string): Promise<number> {
  const reader = new TarReader();
  let end = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    for (const event of reader.write(chunk as Buffer)) {
      if (event.kind === 'entry' && event.header.name === SIGNATURE_PATH) return event.header.offset;
      if (event.kind === 'entry-end') end = event.end;
    }
  }
  reader.end();
  // After the last entry's data: round up to its padding, where the end-of-archive marker begins.
  return Math.ceil(end / 512) * 512;
}

/** The maap.sig entry (header, data, padding) and the end-of-archive marker, as maap pack writes them. */
function signatureEntry(signature: Buffer, mtime: Date): Buffer {
  return Buffer.concat([ustarEntry(SIGNATURE_PATH, signature, mtime), endOfArchive()]);
}
