import { createHash, type Hash, type KeyObject } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PackageIntegrityError, SignatureError } from '../errors.ts';
import { type OnnxInfo, OnnxInspector } from '../onnx/inspect.ts';
import { assertNoDuplicateKeys } from './json-keys.ts';
import type { Manifest } from './manifest.ts';
import { readManifest } from './manifest-fast.ts';
import { isSafeEntryPath, MANIFEST_PATH, SIGNATURE_PATH } from './manifest-rules.ts';
import { findSigner, SIGNATURE_BYTES } from './sign.ts';
import type { TarEvent, TarHeader } from './tar-reader.ts';

export interface CheckerLimits {
  readonly maxEntryBytes: number;
  readonly maxManifestBytes: number;
}

export interface CheckedPackage {
  readonly manifest: Manifest;
  readonly manifestBytes: Buffer;
  readonly id: string;
  readonly signed: boolean;
  readonly signedBy?: string;
  readonly entries?: ReadonlyMap<string, Buffer>;
}

/** The entry being read: what it must hash to, and where its bytes go. */
interface Current {
  readonly name: string;
  readonly size: number;
  readonly kind: 'manifest' | 'signature' | 'file';
  readonly want?: { sha256: string; bytes: number };
  readonly hash?: Hash;
  readonly inspector?: OnnxInspector;
  /** Small entries (manifest, signature) and kept entries are filled here, exactly `size` bytes. */
  readonly into?: Buffer;
  filled: number;
  readonly file?: FileHandle;
}

/**
 * The package rules, applied to the strict tar reader's events as they stream: maap.json first and valid, each
 * other entry listed in the manifest exactly once with the listed size and SHA-256, sizes within limits, the
 * ONNX graph self-contained and matching the manifest signature, maap.sig last. Entries can be kept in memory
 * (one buffer each, no copies) or written under an extraction folder (through file handles: a write error is
 * an error, never a hang).
 */
export class PackageChecker {
  private manifest?: Manifest;
  private manifestBytes?: Buffer;
  private signature?: Buffer;
  private readonly expected = new Map<string, { sha256: string; bytes: number }>();
  private readonly seen = new Set<string>();
  private readonly kept?: Map<string, Buffer>;
  private current?: Current;

  constructor(
    private readonly trusted: readonly KeyObject[],
    private readonly limits: CheckerLimits,
    private readonly options: { readonly keepInMemory?: boolean; readonly extractTo?: string },
  ) {
    if (options.keepInMemory) this.kept = new Map();
  }

  async on(event: TarEvent): Promise<void> {
    if (event.kind === 'entry') return this.begin(event.header);
    const entry = this.current as Current;
    if (event.kind === 'data') {
      const chunk = event.chunk;
      entry.hash?.update(chunk);
      entry.inspector?.feed(chunk);
      entry.into?.set(chunk, entry.filled);
      entry.filled += chunk.length;
      if (entry.file) await entry.file.write(chunk);
      return;
    }
    this.current = undefined;
    await entry.file?.close();
    await this.end(entry);
  }

  /** Closes what an aborted read left open. */
  async abort(): Promise<void> {
    await this.current?.file?.close().catch(() => {});
    this.current = undefined;
  }

  finish(): CheckedPackage {
    const { manifest, manifestBytes, signature } = this;
    if (!manifest || !manifestBytes) throw new PackageIntegrityError('the archive is empty: no maap.json');
    for (const path of this.expected.keys()) {
      if (!this.seen.has(path))
        throw new PackageIntegrityError(
          `entry "${path}" is listed in the manifest but missing from the package`,
        );
    }
    const id = createHash('sha256').update(manifestBytes).digest('hex');
    const entries = this.kept ? { entries: this.kept } : {};
    if (this.trusted.length === 0)
      return { manifest, manifestBytes, id, signed: signature !== undefined, ...entries };
    const what = `${manifest.name}@${manifest.version}`;
    if (!signature) throw new SignatureError(`${what} is not signed, and trusted keys were given`);
    const signedBy = findSigner(manifestBytes, signature, this.trusted);
    if (!signedBy) throw new SignatureError(`${what}: the signature does not verify with any trusted key`);
    return { manifest, manifestBytes, id, signed: true, signedBy, ...entries };
  }

  private async begin({ name, size }: TarHeader): Promise<void> {
    if (!isSafeEntryPath(name))
      throw new PackageIntegrityError(
        `entry "${name}" has an unsafe path (absolute, "..", or empty segments)`,
      );
    if (this.seen.has(name)) throw new PackageIntegrityError(`entry "${name}" appears twice`);
    if (this.signature || this.current?.kind === 'signature') {
      throw new PackageIntegrityError(
        `entry "${name}" follows ${SIGNATURE_PATH}, which must be the last entry`,
      );
    }
    this.seen.add(name);
    if (!this.manifest) {
      if (name !== MANIFEST_PATH)
        throw new PackageIntegrityError(`the first entry must be ${MANIFEST_PATH}, found "${name}"`);
      const max = this.limits.maxManifestBytes;
      if (size > max)
        throw new PackageIntegrityError(`${MANIFEST_PATH} is ${size} bytes, over the ${max}-byte limit`);
      this.current = { name, size, kind: 'manifest', into: Buffer.alloc(size), filled: 0 };
      return;
    }
    if (name === SIGNATURE_PATH) {
      if (size !== SIGNATURE_BYTES)
        throw new SignatureError(
          `${SIGNATURE_PATH} is ${size} bytes; an Ed25519 signature is ${SIGNATURE_BYTES}`,
        );
      this.current = { name, size, kind: 'signature', into: Buffer.alloc(size), filled: 0 };
      return;
    }
    const want = this.expected.get(name);
    if (!want) throw new PackageIntegrityError(`entry "${name}" is not listed in the manifest`);
    const max = this.limits.maxEntryBytes;
    if (size > max)
      throw new PackageIntegrityError(`entry "${name}" is ${size} bytes, over the ${max}-byte limit`);
    if (size !== want.bytes)
      throw new PackageIntegrityError(`entry "${name}" is ${size} bytes but the manifest says ${want.bytes}`);
    this.current = {
      name,
      size,
      kind: 'file',
      want,
      hash: createHash('sha256'),
      // The entry is hashed here once; the inspector only decodes it (skipping weights without copying).
      ...(name === this.manifest.model.path ? { inspector: new OnnxInspector(name, { hash: false }) } : {}),
      // Kept entries go straight into one buffer of the size the header declared (checked against the manifest).
      ...(this.kept ? { into: allocate(name, size) } : {}),
      filled: 0,
      ...(this.options.extractTo ? { file: await createFile(this.options.extractTo, name) } : {}),
    };
  }

  private async end(entry: Current): Promise<void> {
    if (entry.kind === 'manifest') {
      const bytes = entry.into as Buffer;
      const manifest = await readManifest(bytes);
      assertNoDuplicateKeys(bytes.toString('utf8'), MANIFEST_PATH);
      this.manifest = manifest;
      this.manifestBytes = bytes;
      this.expected.set(manifest.model.path, manifest.model);
      for (const f of manifest.files) this.expected.set(f.path, f);
      await this.save(MANIFEST_PATH, bytes);
      return;
    }
    if (entry.kind === 'signature') {
      this.signature = entry.into;
      await this.save(SIGNATURE_PATH, entry.into as Buffer);
      return;
    }
    const sha256 = entry.hash?.digest('hex');
    const want = entry.want as { sha256: string };
    if (sha256 !== want.sha256) {
      throw new PackageIntegrityError(
        `entry "${entry.name}" has SHA-256 ${sha256} but the manifest says ${want.sha256}: the package was modified`,
      );
    }
    if (entry.inspector) checkGraph(entry.inspector.finish(), this.manifest as Manifest);
    if (this.kept && entry.into) this.kept.set(entry.name, entry.into);
  }

  private async save(name: string, data: Buffer): Promise<void> {
    if (!this.options.extractTo) return;
    const file = await createFile(this.options.extractTo, name);
    try {
      await file.write(data);
    } finally {
      await file.close();
    }
  }
}

async function createFile(dir: string, name: string): Promise<FileHandle> {
  // node:fs/promises only when extracting: reading a package into memory (the Lambda predictor) never needs it.
  const { mkdir, open } = await import('node:fs/promises');
  const path = join(dir, name);
  await mkdir(dirname(path), { recursive: true });
  return open(path, 'wx', 0o644);
}

function allocate(name: string, size: number): Buffer {
  try {
    return Buffer.allocUnsafeSlow(size);
  } catch (err) {
    throw new PackageIntegrityError(`entry "${name}" is ${size} bytes: too large to keep in memory`, {
      cause: err,
    });
  }
}

function checkGraph(info: OnnxInfo, manifest: Manifest): void {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (info.opset !== manifest.model.opset || info.irVersion !== manifest.model.irVersion) {
    throw new PackageIntegrityError(`the manifest's opset/irVersion do not match ${manifest.model.path}`);
  }
  if (!same(info.inputs, manifest.signature.inputs) || !same(info.outputs, manifest.signature.outputs)) {
    throw new PackageIntegrityError(
      `the manifest's signature does not match the inputs and outputs of ${manifest.model.path}`,
    );
  }
}
