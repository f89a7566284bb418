import { readFile } from 'node:fs/promises';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackageIntegrityError } from '../../lib/errors.ts';
import { BLOCK, TarReader } from '../../lib/package/tar-reader.ts';
import { mlpModel } from '../fixtures/models.ts';
import { packFixture, tempDir } from '../helpers/packages.ts';

/** A ustar header block with a correct checksum; `patch` edits the raw block before the checksum is set. */
function header(
  name: string,
  size: number,
  options: { type?: string; magic?: string; patch?: (b: Buffer) => void } = {},
): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 'utf8');
  b.write('0000644\0', 100, 'latin1');
  b.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  b.write(options.type ?? '0', 156, 'latin1');
  b.write(options.magic ?? 'ustar\u000000', 257, 'latin1');
  options.patch?.(b);
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += b[i] as number;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}
const padded = (data: Buffer) => Buffer.concat([data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)]);
const END = Buffer.alloc(2 * BLOCK);
const file = (name: string, data: string) =>
  Buffer.concat([header(name, data.length), padded(Buffer.from(data))]);

function read(bytes: Buffer, chunk = 4096) {
  const reader = new TarReader();
  const entries: { name: string; data: Buffer }[] = [];
  for (let i = 0; i < bytes.length; i += chunk) {
    for (const event of reader.write(bytes.subarray(i, i + chunk))) {
      if (event.kind === 'entry') entries.push({ name: event.header.name, data: Buffer.alloc(0) });
      if (event.kind === 'data') {
        const last = entries.at(-1) as { data: Buffer };
        last.data = Buffer.concat([last.data, event.chunk]);
      }
    }
  }
  reader.end();
  return entries;
}

let work: { dir: string; cleanup: () => Promise<void> };
let pkg: Buffer;
beforeAll(async () => {
  work = await tempDir();
  pkg = await readFile((await packFixture(work.dir, mlpModel())).path);
});
afterAll(() => work.cleanup());

describe('TarReader reads what maap pack writes', () => {
  it.each([1, 7, 512, 4096, 1 << 20])('in chunks of %i bytes', (chunk) => {
    const entries = read(pkg, chunk);
    expect(entries.map((e) => e.name)).toEqual(['maap.json', 'model.onnx']);
    expect(entries[1]?.data.equals(mlpModel().bytes)).toBe(true);
  });

  it('an empty entry, and the ustar prefix field for long paths', () => {
    const long = `${'d'.repeat(120)}/file.txt`;
    const withPrefix = header('file.txt', 2, { patch: (b) => b.write('d'.repeat(120), 345, 'latin1') });
    const archive = Buffer.concat([file('empty', ''), withPrefix, padded(Buffer.from('hi')), END]);
    expect(read(archive).map((e) => [e.name, e.data.toString()])).toEqual([
      ['empty', ''],
      [long, 'hi'],
    ]);
  });
});

describe('TarReader refuses every byte it cannot account for', () => {
  const refuse = (bytes: Buffer, message: RegExp) => {
    expect(() => read(bytes)).toThrow(PackageIntegrityError);
    expect(() => read(bytes)).toThrow(message);
  };

  it('a pax extended header (as general tar writers emit for long or non-ASCII names)', async () => {
    const archive = tar.pack();
    const chunks: Buffer[] = [];
    archive.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    const ended = new Promise<void>((ok) => archive.on('end', () => ok()));
    archive.entry({ name: 'vocabulário.txt' }, 'x');
    archive.finalize();
    await ended;
    refuse(Buffer.concat(chunks), /a pax extended header/);
  });

  it('a GNU long-name header', () => {
    refuse(
      Buffer.concat([header('././@LongLink', 3, { type: 'L' }), padded(Buffer.from('abc')), END]),
      /GNU long-name header/,
    );
  });

  it('a GNU-format header', () => {
    refuse(
      Buffer.concat([header('a', 1, { magic: 'ustar  \0' }), padded(Buffer.from('a')), END]),
      /not POSIX ustar/,
    );
  });

  it('a "pseudo-null" block that carries bytes in its checksum field', () => {
    const pseudo = Buffer.alloc(BLOCK);
    pseudo.write('000400\0 ', 148, 'latin1'); // sums to 256: lenient readers skip it as empty
    refuse(Buffer.concat([file('a', 'x'), pseudo, END]), /not POSIX ustar/);
  });

  it('bytes hidden after the name terminator', () => {
    const hidden = header('a', 1, { patch: (b) => b.write('secret', 50, 'latin1') });
    refuse(Buffer.concat([hidden, padded(Buffer.from('a')), END]), /hides bytes after its name/);
  });

  it('bytes in the padding after an entry', () => {
    const data = Buffer.from('x');
    const pad = Buffer.alloc(BLOCK - 1);
    pad.write('smuggled', 0);
    refuse(Buffer.concat([header('a', 1), data, pad, END]), /unexpected bytes in the padding/);
  });

  it('a second archive appended after the end-of-archive marker', () => {
    refuse(
      Buffer.concat([pkg, file('maap.sig', 'x'.repeat(64)), END]),
      /unexpected bytes after the end-of-archive marker/,
    );
  });

  it('a header after a single zero block', () => {
    refuse(Buffer.concat([file('a', 'x'), Buffer.alloc(BLOCK), file('b', 'y'), END]), /follows a zero block/);
  });

  it('a corrupt checksum', () => {
    const bad = header('a', 1);
    bad.write('x', 10);
    refuse(Buffer.concat([bad, padded(Buffer.from('a')), END]), /bad checksum/);
  });

  it('a size field that is not octal', () => {
    refuse(
      Buffer.concat([header('a', 1, { patch: (b) => b.write('9999', 124, 'latin1') }), END]),
      /invalid size field/,
    );
  });

  it('an archive cut inside an entry', () => {
    refuse(pkg.subarray(0, 1500), /ends before its last entry is complete/);
  });

  it('an archive without its end-of-archive marker', () => {
    refuse(pkg.subarray(0, pkg.length - 1024), /lacks its end-of-archive marker/);
  });

  it('endless zero padding after the marker', () => {
    refuse(Buffer.concat([pkg, Buffer.alloc(64 * 1024)]), /too much padding/);
  });
});
