import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PackageIntegrityError } from '../../lib/errors.ts';
import { verifyPackage } from '../../lib/package/verify.ts';
import { gatherModel, mlpModel } from '../fixtures/models.ts';
import { packFixture, type RawEntry, rewritePackage, tempDir } from '../helpers/packages.ts';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(() => cleanup());

/** The package's bytes as a stream of `size`-byte chunks (how a socket or a file delivers them). */
function chunked(bytes: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return Readable.from(chunks);
}

describe('verifyPackage keepInMemory', () => {
  it('keeps each entry exactly, in one buffer of its own, however the bytes arrive', async () => {
    const model = gatherModel(300, 64); // ~77 kB: many chunks at every size below
    await writeFile(join(dir, 'labels.txt'), 'cat\ndog\n');
    const packed = await packFixture(dir, model, { files: [join(dir, 'labels.txt')] });
    const bytes = await readFile(packed.path);
    for (const source of [packed.path, chunked(bytes, 1), chunked(bytes, 7), chunked(bytes, 65536)]) {
      const verified = await verifyPackage(source, { keepInMemory: true });
      expect(verified.id).toBe(packed.id);
      expect([...(verified.entries?.keys() ?? [])]).toEqual(['model.onnx', 'labels.txt']);
      for (const [name, expected] of [
        ['model.onnx', Buffer.from(model.bytes)],
        ['labels.txt', Buffer.from('cat\ndog\n')],
      ] as const) {
        const kept = verified.entries?.get(name) as Buffer;
        expect(kept.equals(expected), name).toBe(true);
        // Its own allocation, exactly the entry's size: nothing else shares (or can later write) that memory.
        expect(kept.byteOffset).toBe(0);
        expect(kept.buffer.byteLength).toBe(expected.length);
      }
    }
  });

  it('keeps nothing of a package it refuses', async () => {
    const packed = await packFixture(dir, mlpModel());
    const bad = join(dir, 'bad.maap');
    await rewritePackage(packed.path, bad, (e) => {
      const modelBytes = Buffer.from((e[1] as RawEntry).data);
      modelBytes.writeUInt8(modelBytes.readUInt8(modelBytes.length - 1) ^ 0xff, modelBytes.length - 1);
      return [e[0] as RawEntry, { header: { name: 'model.onnx' }, data: modelBytes }];
    });
    await expect(verifyPackage(bad, { keepInMemory: true })).rejects.toThrow(PackageIntegrityError);
    await expect(verifyPackage(bad, { keepInMemory: true })).rejects.toThrow(/has SHA-256 [0-9a-f]{64} but/);
  });
});
