import { createHash } from 'node:crypto';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OnnxModelError, PackageIntegrityError, SignatureError } from '../../lib/errors.ts';
import { generateKeyFiles } from '../../lib/package/sign.ts';
import { verifyPackage } from '../../lib/package/verify.ts';
import { externalDataModel, identityModel, mlpModel } from '../fixtures/models.ts';
import {
  packFixture,
  type RawEntry,
  readEntries,
  rewritePackage,
  tempDir,
  writeEntries,
} from '../helpers/packages.ts';

let dir: string;
let cleanup: () => Promise<void>;
let pkg: string;
let bad: string;
let extractTo: string;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  pkg = (await packFixture(dir, mlpModel())).path;
  bad = join(dir, 'bad.maap');
  extractTo = join(dir, 'out');
});
afterEach(() => cleanup());

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/** Verifies `path` with extraction on; asserts the error class and message, and that nothing was extracted. */
async function expectRefused(
  path: string,
  errorClass: new (...a: never[]) => Error,
  message: RegExp,
  options = {},
) {
  const error = await verifyPackage(path, { extractTo, ...options }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(errorClass);
  expect((error as Error).message, String((error as Error).message)).toMatch(message);
  expect(await exists(extractTo)).toBe(false);
}

const edit = (transform: (e: RawEntry[]) => RawEntry[]) => rewritePackage(pkg, bad, transform);
const manifestOf = (entries: RawEntry[]) => JSON.parse((entries[0] as RawEntry).data.toString());
const withManifest = (entries: RawEntry[], manifest: unknown): RawEntry[] => [
  { header: { name: 'maap.json' }, data: Buffer.from(JSON.stringify(manifest)) },
  ...entries.slice(1),
];

describe('verifyPackage refuses', () => {
  it('a truncated archive', async () => {
    const bytes = await readFile(pkg);
    await writeFile(bad, bytes.subarray(0, bytes.length - 1500));
    await expectRefused(bad, PackageIntegrityError, /truncated/);
  });

  it('an archive cut exactly after its last entry (no end-of-archive marker)', async () => {
    const bytes = await readFile(pkg);
    await writeFile(bad, bytes.subarray(0, bytes.length - 1024));
    await expectRefused(bad, PackageIntegrityError, /lacks its end-of-archive marker/);
  });

  it('a file that is not a tar archive', async () => {
    await writeFile(bad, Buffer.alloc(4096, 7));
    await expectRefused(bad, PackageIntegrityError, /not a valid maap package|first entry/);
  });

  it('an empty archive', async () => {
    await writeEntries(bad, []);
    await expectRefused(bad, PackageIntegrityError, /empty/);
  });

  it('a first entry other than maap.json', async () => {
    await edit((e) => [e[1] as RawEntry, e[0] as RawEntry]);
    await expectRefused(bad, PackageIntegrityError, /first entry must be maap.json/);
  });

  it('an entry not listed in the manifest', async () => {
    await edit((e) => [...e, { header: { name: 'payload.sh' }, data: Buffer.from('#!/bin/sh\n') }]);
    await expectRefused(bad, PackageIntegrityError, /"payload.sh" is not listed in the manifest/);
  });

  it('a duplicate entry', async () => {
    await edit((e) => [...e, e[1] as RawEntry]);
    await expectRefused(bad, PackageIntegrityError, /"model.onnx" appears twice/);
  });

  it('an absolute path', async () => {
    await edit((e) => [...e, { header: { name: '/etc/cron.d/evil' }, data: Buffer.from('x') }]);
    await expectRefused(bad, PackageIntegrityError, /unsafe path/);
  });

  it('a ".." path', async () => {
    await edit((e) => [...e, { header: { name: '../../evil.txt' }, data: Buffer.from('x') }]);
    await expectRefused(bad, PackageIntegrityError, /unsafe path/);
  });

  it('a symbolic link', async () => {
    await edit((e) => [
      ...e,
      { header: { name: 'link', type: 'symlink', linkname: '/etc/passwd' }, data: Buffer.alloc(0) },
    ]);
    await expectRefused(bad, PackageIntegrityError, /"link" is a symbolic link/);
  });

  it('a hard link', async () => {
    await edit((e) => [
      ...e,
      { header: { name: 'hard', type: 'link', linkname: 'model.onnx' }, data: Buffer.alloc(0) },
    ]);
    await expectRefused(bad, PackageIntegrityError, /hard link/);
  });

  it('a device', async () => {
    await edit((e) => [...e, { header: { name: 'dev', type: 'character-device' }, data: Buffer.alloc(0) }]);
    await expectRefused(bad, PackageIntegrityError, /character device/);
  });

  it('an entry over the size limit', async () => {
    await expectRefused(pkg, PackageIntegrityError, /over the 100-byte limit/, { maxEntryBytes: 100 });
  });

  it('a manifest over the size limit', async () => {
    await expectRefused(pkg, PackageIntegrityError, /maap.json is \d+ bytes, over the 64-byte limit/, {
      maxManifestBytes: 64,
    });
  });

  it('a manifest with an unknown field', async () => {
    await edit((e) => withManifest(e, { ...manifestOf(e), owner: 'mallory' }));
    await expectRefused(bad, PackageIntegrityError, /invalid manifest.*owner/);
  });

  it('a manifest that is not JSON', async () => {
    await edit((e) => [
      { header: { name: 'maap.json' }, data: Buffer.from('{"schemaVersion": 1,') },
      ...e.slice(1),
    ]);
    await expectRefused(bad, PackageIntegrityError, /not valid UTF-8 JSON/);
  });

  it('a model whose bytes were changed (SHA-256 mismatch)', async () => {
    await edit((e) => {
      const model = Buffer.from((e[1] as RawEntry).data);
      model.writeUInt8(model.readUInt8(model.length - 1) ^ 0xff, model.length - 1);
      return [e[0] as RawEntry, { header: { name: 'model.onnx' }, data: model }];
    });
    await expectRefused(
      bad,
      PackageIntegrityError,
      /"model.onnx" has SHA-256 [0-9a-f]{64} but the manifest says/,
    );
  });

  it('an entry whose size differs from the manifest', async () => {
    await edit((e) => [
      e[0] as RawEntry,
      { header: { name: 'model.onnx' }, data: Buffer.concat([(e[1] as RawEntry).data, Buffer.from([0])]) },
    ]);
    await expectRefused(bad, PackageIntegrityError, /bytes but the manifest says/);
  });

  it('an entry listed in the manifest but missing', async () => {
    await edit((e) => [e[0] as RawEntry]);
    await expectRefused(bad, PackageIntegrityError, /"model.onnx" is listed in the manifest but missing/);
  });

  it('a manifest whose signature does not match the graph (hashes re-computed by the attacker)', async () => {
    await edit((e) => {
      const m = manifestOf(e);
      m.signature.inputs[0].shape = [-1, 5];
      return withManifest(e, m);
    });
    await expectRefused(bad, PackageIntegrityError, /signature does not match the inputs and outputs/);
  });

  it('a model with external data even when its hash matches', async () => {
    const ext = externalDataModel().bytes;
    const reference = await packFixture(dir, identityModel('FP32'), { name: 'other' });
    await rewritePackage(reference.path, bad, (e) => {
      const m = manifestOf(e);
      m.model.sha256 = createHash('sha256').update(ext).digest('hex');
      m.model.bytes = ext.length;
      return [...withManifest(e, m).slice(0, 1), { header: { name: 'model.onnx' }, data: ext }];
    });
    await expectRefused(bad, OnnxModelError, /external file/);
  });

  it('a signature that does not verify', async () => {
    const keys = await generateKeyFiles(join(dir, 'k'));
    const signed = await packFixture(dir, mlpModel(), { name: 'signed', signKey: keys.privatePath });
    await rewritePackage(signed.path, bad, (e) => {
      const sig = Buffer.from((e.at(-1) as RawEntry).data);
      sig.writeUInt8(sig.readUInt8(0) ^ 1, 0);
      return [...e.slice(0, -1), { header: { name: 'maap.sig' }, data: sig }];
    });
    await expectRefused(bad, SignatureError, /does not verify with any trusted key/, {
      trustedKeys: [keys.publicPath],
    });
  });

  it('a package signed by a key that is not trusted', async () => {
    const keys = await generateKeyFiles(join(dir, 'k'));
    const other = await generateKeyFiles(join(dir, 'other'));
    const signed = await packFixture(dir, mlpModel(), { name: 'signed', signKey: keys.privatePath });
    await expectRefused(signed.path, SignatureError, /does not verify/, { trustedKeys: [other.publicPath] });
  });

  it('an unsigned package when trusted keys are given', async () => {
    const keys = await generateKeyFiles(join(dir, 'k'));
    await expectRefused(pkg, SignatureError, /is not signed, and trusted keys were given/, {
      trustedKeys: [keys.publicPath],
    });
  });

  it('an entry after maap.sig', async () => {
    const keys = await generateKeyFiles(join(dir, 'k'));
    const signed = await packFixture(dir, mlpModel(), { name: 'signed', signKey: keys.privatePath });
    await rewritePackage(signed.path, bad, (e) => [e[0] as RawEntry, e[2] as RawEntry, e[1] as RawEntry]);
    await expectRefused(bad, PackageIntegrityError, /follows maap.sig/);
  });

  it('a second archive appended after the end-of-archive marker (e.g. carrying a signature)', async () => {
    const keys = await generateKeyFiles(join(dir, 'k'));
    const signed = await packFixture(dir, mlpModel(), { name: 'signed', signKey: keys.privatePath });
    const sig = (await readEntries(signed.path)).at(-1) as RawEntry;
    const appended = join(dir, 'appended.maap');
    await writeEntries(appended, [sig]);
    await writeFile(bad, Buffer.concat([await readFile(pkg), await readFile(appended)]));
    await expectRefused(bad, PackageIntegrityError, /unexpected bytes after the end-of-archive marker/);
  });

  it('a pax header that renames an entry', async () => {
    await edit((e) => [
      e[0] as RawEntry,
      { header: { ...(e[1] as RawEntry).header, name: 'modèle.onnx' }, data: (e[1] as RawEntry).data },
    ]);
    await expectRefused(bad, PackageIntegrityError, /a pax extended header/);
  });

  it('a duplicate key in maap.json (parsers disagree on which one counts)', async () => {
    await edit((e) => {
      const text = (e[0] as RawEntry).data.toString();
      const doubled = text.replace('"version": "1.0.0",', '"version": "1.0.0",\n  "version": "1.0.0",');
      return [{ header: { name: 'maap.json' }, data: Buffer.from(doubled) }, ...e.slice(1)];
    });
    await expectRefused(bad, PackageIntegrityError, /names the key "version" twice/);
  });

  it('a missing package file, without a stack trace', async () => {
    await expectRefused(join(dir, 'nope.maap'), PackageIntegrityError, /cannot read .*nope.maap: ENOENT/);
  });
});
