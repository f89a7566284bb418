import { PackageIntegrityError } from '../errors.ts';
import { decodeManifest, MANIFEST_PATH, type Manifest } from './manifest.ts';
import { DEFAULT_MAX_MANIFEST_BYTES } from './manifest-rules.ts';
import { BLOCK, parseHeader } from './tar-reader.ts';

export { DEFAULT_MAX_MANIFEST_BYTES };

/**
 * Reads the manifest from the first bytes of a package (one ranged read of the registry object). Returns
 * `{ needed }` when `head` is too short to hold the whole manifest. The full reader (verifyPackage) checks
 * everything else; this only trusts what it parses for listing.
 */
export function readManifestFromHead(
  head: Uint8Array,
): { manifest: Manifest; manifestBytes: Buffer } | { needed: number } {
  if (head.length < BLOCK) return { needed: BLOCK };
  // The same header parser as the full reader: what one accepts, the other does.
  const header = parseHeader(Buffer.from(head.buffer, head.byteOffset, BLOCK), 0);
  if (!header || header.name !== MANIFEST_PATH) {
    throw new PackageIntegrityError(
      `not a maap package: the first entry must be ${MANIFEST_PATH}, found "${header?.name ?? '(end of archive)'}"`,
    );
  }
  if (header.size > DEFAULT_MAX_MANIFEST_BYTES) {
    throw new PackageIntegrityError(
      `${MANIFEST_PATH} is ${header.size} bytes, over the ${DEFAULT_MAX_MANIFEST_BYTES}-byte limit`,
    );
  }
  if (head.length < BLOCK + header.size) return { needed: BLOCK + header.size };
  const manifestBytes = Buffer.from(head.subarray(BLOCK, BLOCK + header.size));
  return { manifest: decodeManifest(manifestBytes), manifestBytes };
}
