import { createReadStream, type WriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { BLOCK } from './tar-reader.ts';

/**
 * Writes the one tar dialect maap reads (`TarReader`): POSIX ustar, regular files, mode 0644, owner 0, names
 * of at most 100 bytes. File contents are piped straight from disk in 1 MiB chunks: packing costs what the
 * copy costs.
 */
export function ustarHeader(name: string, size: number, mtime: Date): Buffer {
  const block = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name "${name}" is longer than 100 bytes`);
  block.write(name, 0, 'utf8');
  const octal = (value: number, digits: number, at: number) =>
    block.write(`${value.toString(8).padStart(digits, '0')}\0`, at, 'latin1');
  octal(0o644, 7, 100); // mode
  octal(0, 7, 108); // uid
  octal(0, 7, 116); // gid
  octal(size, 11, 124);
  octal(Math.floor(mtime.getTime() / 1000), 11, 136);
  block.write('0', 156, 'latin1'); // regular file
  block.write('ustar\u000000', 257, 'latin1');
  octal(0, 7, 329); // devmajor
  octal(0, 7, 337); // devminor
  let sum = 8 * 0x20; // the checksum field counts as spaces while summing
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += block[i] as number;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

const padding = (size: number) => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

/** A whole entry for in-memory `data`: header, data, padding to the block size. */
export function ustarEntry(name: string, data: Buffer, mtime: Date): Buffer {
  return Buffer.concat([ustarHeader(name, data.length, mtime), data, padding(data.length)]);
}

/** The end-of-archive marker: two zero blocks. */
export const endOfArchive = (): Buffer => Buffer.alloc(2 * BLOCK);

export class TarWriter {
  constructor(
    private readonly out: WriteStream,
    private readonly mtime: Date,
  ) {}

  async addBuffer(name: string, data: Buffer): Promise<void> {
    await this.write(ustarEntry(name, data, this.mtime));
  }

  /** Copies `size` bytes of the file at `path`; calls `progress` with each chunk's length. */
  async addFile(name: string, path: string, size: number, progress?: (bytes: number) => void): Promise<void> {
    await this.write(ustarHeader(name, size, this.mtime));
    const source = createReadStream(path, { highWaterMark: 1 << 20, start: 0, end: size - 1 });
    let copied = 0;
    source.on('data', (chunk) => {
      copied += chunk.length;
      progress?.(chunk.length);
    });
    if (size > 0) await pipeline(source, this.out, { end: false });
    if (copied !== size) throw new Error(`${path} is shorter than when it was inspected`);
    await this.write(padding(size));
  }

  /** Writes the end-of-archive marker and ends the stream. */
  async finish(): Promise<void> {
    await new Promise<void>((ok, fail) =>
      this.out.end(endOfArchive(), (err?: Error | null) => (err ? fail(err) : ok())),
    );
  }

  private write(data: Buffer): Promise<void> {
    return new Promise((ok, fail) => {
      this.out.write(data, (err) => (err ? fail(err) : ok()));
    });
  }
}
