import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { SignatureError, UsageError } from '../errors.ts';

/** An Ed25519 signature is always 64 bytes. */
export const SIGNATURE_BYTES = 64;

/** Short, stable identity of a public key: the first 16 hex digits of SHA-256 over its SPKI DER encoding. */
export function keyFingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

function asEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new SignatureError(
      `${what} is a ${key.asymmetricKeyType ?? key.type} key; maap signs with Ed25519 (maap keygen)`,
    );
  }
  return key;
}

/** Loads a private key from PEM text, or from a PEM file when `source` is a path. */
export async function loadPrivateKey(source: string | KeyObject): Promise<KeyObject> {
  if (typeof source !== 'string') return asEd25519(source, 'the signing key');
  const pem = source.includes('-----BEGIN') ? source : await readKeyFile(source);
  try {
    return asEd25519(createPrivateKey(pem), `signing key ${short(source)}`);
  } catch (err) {
    if (err instanceof SignatureError) throw err;
    throw new SignatureError(
      `signing key ${short(source)} is not a PEM private key (${(err as Error).message})`,
    );
  }
}

/** Loads a public key from PEM text, or from a PEM file when `source` is a path. */
export async function loadPublicKey(source: string | KeyObject): Promise<KeyObject> {
  if (typeof source !== 'string')
    return asEd25519(source.type === 'private' ? createPublicKey(source) : source, 'trusted key');
  const pem = source.includes('-----BEGIN') ? source : await readKeyFile(source);
  try {
    return asEd25519(createPublicKey(pem), `trusted key ${short(source)}`);
  } catch (err) {
    if (err instanceof SignatureError) throw err;
    throw new SignatureError(
      `trusted key ${short(source)} is not a PEM public key (${(err as Error).message})`,
    );
  }
}

async function readKeyFile(path: string): Promise<string> {
  // node:fs/promises only for key files: verifying with inline keys (or none) never needs it.
  const { readFile } = await import('node:fs/promises');
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read key file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

function short(source: string): string {
  return source.includes('-----BEGIN') ? '(PEM text)' : source;
}

export function signManifest(manifestBytes: Uint8Array, privateKey: KeyObject): Buffer {
  return sign(null, manifestBytes, privateKey);
}

/** Returns the fingerprint of the trusted key that made `signature`, or undefined when none did. */
export function findSigner(
  manifestBytes: Uint8Array,
  signature: Uint8Array,
  trusted: readonly KeyObject[],
): string | undefined {
  if (signature.length !== SIGNATURE_BYTES) return undefined;
  for (const key of trusted) if (verify(null, manifestBytes, key, signature)) return keyFingerprint(key);
  return undefined;
}

/** Writes `<prefix>.key` (PKCS#8 PEM, mode 0600) and `<prefix>.pub` (SPKI PEM); never overwrites. */
export async function generateKeyFiles(
  prefix: string,
): Promise<{ privatePath: string; publicPath: string; fingerprint: string }> {
  const { writeFile } = await import('node:fs/promises');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privatePath = `${prefix}.key`;
  const publicPath = `${prefix}.pub`;
  try {
    await writeFile(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (err) {
    throw new UsageError(
      `cannot write ${privatePath}: ${(err as NodeJS.ErrnoException).code === 'EEXIST' ? 'it already exists' : (err as Error).message}`,
    );
  }
  try {
    await writeFile(publicPath, publicKey.export({ type: 'spki', format: 'pem' }), {
      mode: 0o644,
      flag: 'wx',
    });
  } catch (err) {
    const { rm } = await import('node:fs/promises');
    await rm(privatePath, { force: true });
    throw new UsageError(
      `cannot write ${publicPath}: ${(err as NodeJS.ErrnoException).code === 'EEXIST' ? 'it already exists' : (err as Error).message}`,
    );
  }
  return { privatePath, publicPath, fingerprint: keyFingerprint(publicKey) };
}
