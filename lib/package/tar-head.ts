import { PackageIntegrityError } from '../errors.ts';
import { decodeManifest, MANIFEST_PATH, type Manifest } from './manifest.ts';

const BLOCK = 512;
/** The largest maap.json a reader accepts. */
export const DEFAULT_MAX_MANIFEST_BYTES = 1024 * 1024;

/**
 * Reads the manifest from the first bytes of a package (one ranged read of the registry object). Returns
 * `{ needed }` when `head` is too short to hold the whole manifest. The full reader (verifyPackage) checks
 * everything else; this only trusts what it parses for listing.
 */
export function readManifestFromHead(
  head: Uint8Array,
): { manifest: Manifest; manifestBytes: Buffer } | { needed: number } {
  if (head.length < BLOCK) return { needed: BLOCK };
  const header = Buffer.from(head.buffer, head.byteOffset, BLOCK);
  if (!validChecksum(header))
    throw new PackageIntegrityError('not a maap package: the first tar header is corrupt');
  const name = cString(header, 0, 100);
  const prefix = cString(header, 345, 155);
  const type = String.fromCharCode(header[156] ?? 0);
  if ((prefix ? `${prefix}/${name}` : name) !== MANIFEST_PATH || (type !== '0' && type !== '\0')) {
    throw new PackageIntegrityError(
      `not a maap package: the first entry must be ${MANIFEST_PATH}, found "${name}"`,
    );
  }
  const size = Number.parseInt(cString(header, 124, 12).trim() || 'x', 8);
  if (!Number.isSafeInteger(size) || size > DEFAULT_MAX_MANIFEST_BYTES) {
    throw new PackageIntegrityError(`${MANIFEST_PATH} declares an invalid or oversized length`);
  }
  if (head.length < BLOCK + size) return { needed: BLOCK + size };
  const manifestBytes = Buffer.from(head.subarray(BLOCK, BLOCK + size));
  return { manifest: decodeManifest(manifestBytes), manifestBytes };
}

function cString(buf: Buffer, start: number, length: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end === -1 || end > start + length ? start + length : end);
}

function validChecksum(header: Buffer): boolean {
  const stored = Number.parseInt(cString(header, 148, 8).trim() || 'x', 8);
  let sum = 8 * 32; // the checksum field itself counts as spaces
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += header[i] as number;
  return stored === sum;
}
