import { PackageIntegrityError } from '../errors.ts';

/**
 * A strict, streaming reader of the one tar dialect maap writes: POSIX ustar, regular files only. General tar
 * readers are lenient in ways that let bytes ride along unverified (pax and GNU extension headers, "pseudo-null"
 * blocks, data in padding, a second archive after the end marker); this one refuses every byte it cannot
 * account for. It is push-based: `write` a chunk, get back what it held; payload chunks are views into the
 * input, never copies, so memory stays flat.
 */

export const BLOCK = 512;

/** The archive breaks the tar rules maap packages follow. */
export class TarFormatError extends PackageIntegrityError {}
/** After the end-of-archive marker (two zero blocks) writers pad to their record size (GNU tar: 10 KiB). */
const MAX_TRAILING_ZEROS = 20 * 1024;

export interface TarHeader {
  /** The entry path (`prefix/name` when the ustar prefix field is used). */
  readonly name: string;
  readonly size: number;
  /** Byte offset of the header in the archive. */
  readonly offset: number;
}

export type TarEvent =
  | { readonly kind: 'entry'; readonly header: TarHeader }
  | { readonly kind: 'data'; readonly chunk: Buffer }
  /** `end`: the byte offset just after the entry's data (its padding follows). */
  | { readonly kind: 'entry-end'; readonly end: number };

const TYPES: Record<string, string> = {
  '1': 'a hard link',
  '2': 'a symbolic link',
  '3': 'a character device',
  '4': 'a block device',
  '5': 'a directory',
  '6': 'a FIFO',
  '7': 'a contiguous file',
  x: 'a pax extended header',
  g: 'a pax global header',
  L: 'a GNU long-name header',
  K: 'a GNU long-link header',
  S: 'a GNU sparse file',
};

/** Parses one 512-byte header block; null for an all-zero block. Refuses anything but a plain ustar file. */
export function parseHeader(block: Buffer, offset: number): TarHeader | null {
  if (block.every((b) => b === 0)) return null;
  const at = `at byte ${offset}`;
  if (!validChecksum(block)) throw new TarFormatError(`corrupt tar header ${at} (bad checksum)`);
  if (block.toString('latin1', 257, 265) !== 'ustar\u000000') {
    throw new TarFormatError(`tar header ${at} is not POSIX ustar: maap packages use no other tar dialect`);
  }
  const name = field(block, 0, 100, at, 'name');
  const prefix = field(block, 345, 155, at, 'prefix');
  const path = prefix ? `${prefix}/${name}` : name;
  const flag = String.fromCharCode(block[156] as number);
  if (flag !== '0' && flag !== '\0') {
    const kind = TYPES[flag] ?? `of tar type '${flag.replace(/[^\x20-\x7e]/g, '?')}'`;
    throw new TarFormatError(`entry "${path}" is ${kind}; packages hold regular files only`);
  }
  return { name: path, size: octal(block, 124, 12, at), offset };
}

/** A NUL-terminated text field whose unused bytes are all NUL (nothing hidden after the terminator). */
function field(block: Buffer, start: number, length: number, at: string, what: string): string {
  const end = block.indexOf(0, start);
  const stop = end === -1 || end > start + length ? start + length : end;
  for (let i = stop; i < start + length; i++) {
    if (block[i] !== 0) throw new TarFormatError(`tar header ${at} hides bytes after its ${what}`);
  }
  const bytes = block.subarray(start, stop);
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes))
    throw new TarFormatError(`tar header ${at}: ${what} is not UTF-8`);
  return text;
}

function octal(block: Buffer, start: number, length: number, at: string): number {
  const text = block.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
  if (!/^[0-7]{1,11}$/.test(text)) throw new TarFormatError(`tar header ${at} has an invalid size field`);
  return Number.parseInt(text, 8);
}

function validChecksum(block: Buffer): boolean {
  const text = block.toString('latin1', 148, 156).replace(/[\0 ]+$/, '');
  if (!/^[0-7]{1,7}$/.test(text)) return false;
  let sum = 8 * 0x20; // the checksum field counts as spaces
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += block[i] as number;
  return Number.parseInt(text, 8) === sum;
}

enum State {
  Header,
  Data,
  Padding,
  SecondZero,
  Trailer,
}

export class TarReader {
  private state = State.Header;
  private offset = 0;
  private block = Buffer.alloc(BLOCK);
  private filled = 0;
  private remaining = 0;
  private trailing = 0;

  /** Total bytes consumed. */
  get bytes(): number {
    return this.offset;
  }

  write(chunk: Buffer): TarEvent[] {
    const events: TarEvent[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.state === State.Data) {
        const take = Math.min(this.remaining, chunk.length - i);
        events.push({ kind: 'data', chunk: chunk.subarray(i, i + take) });
        i += take;
        this.offset += take;
        this.remaining -= take;
        if (this.remaining === 0) this.endData(events);
        continue;
      }
      if (this.state === State.Padding || this.state === State.Trailer) {
        const take =
          this.state === State.Padding ? Math.min(this.remaining, chunk.length - i) : chunk.length - i;
        for (let j = i; j < i + take; j++) {
          if (chunk[j] !== 0) {
            const where =
              this.state === State.Padding
                ? 'in the padding after an entry'
                : 'after the end-of-archive marker';
            throw new TarFormatError(`unexpected bytes ${where} (at byte ${this.offset + j - i})`);
          }
        }
        i += take;
        this.offset += take;
        if (this.state === State.Trailer) {
          this.trailing += take;
          if (this.trailing > MAX_TRAILING_ZEROS)
            throw new TarFormatError('too much padding after the end-of-archive marker');
        } else {
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.Header;
        }
        continue;
      }
      // Header or the second end-of-archive block: collect a whole block.
      const take = Math.min(BLOCK - this.filled, chunk.length - i);
      chunk.copy(this.block, this.filled, i, i + take);
      this.filled += take;
      i += take;
      if (this.filled < BLOCK) continue;
      this.filled = 0;
      const start = this.offset;
      this.offset += BLOCK;
      const header = parseHeader(this.block, start);
      if (this.state === State.SecondZero) {
        if (header)
          throw new TarFormatError(
            `a header follows a zero block at byte ${start}: the archive is malformed`,
          );
        this.state = State.Trailer;
      } else if (!header) {
        this.state = State.SecondZero;
      } else {
        events.push({ kind: 'entry', header });
        this.remaining = header.size;
        this.state = State.Data;
        if (header.size === 0) this.endData(events);
      }
    }
    return events;
  }

  /** Throws unless the archive ended cleanly: after its end-of-archive marker. */
  end(): void {
    if (this.state === State.Trailer) return;
    if (this.state === State.Data || this.state === State.Padding || this.filled > 0) {
      throw new TarFormatError('truncated: the archive ends before its last entry is complete');
    }
    throw new TarFormatError('truncated: the archive lacks its end-of-archive marker');
  }

  private endData(events: TarEvent[]): void {
    events.push({ kind: 'entry-end', end: this.offset });
    const pad = (BLOCK - (this.offset % BLOCK)) % BLOCK;
    this.remaining = pad;
    this.state = pad ? State.Padding : State.Header;
  }
}
