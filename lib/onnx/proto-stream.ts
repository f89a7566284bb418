/**
 * A push-based, schema-directed protobuf decoder. It is fed a byte stream chunk by chunk, descends only into
 * the message fields its schema names, collects only small scalar and string fields, and skips everything else
 * (weights, mostly) by byte count without buffering it. Memory stays flat however large the input is.
 */

/** How one field of a message is decoded. */
export type FieldSpec =
  | {
      readonly name: string;
      readonly kind: 'message';
      readonly type: () => MessageSpec;
      readonly repeated?: boolean;
    }
  | { readonly name: string; readonly kind: 'varint'; readonly repeated?: boolean }
  | { readonly name: string; readonly kind: 'string'; readonly repeated?: boolean }
  /** Records `true` when the field is present, without decoding it. */
  | { readonly name: string; readonly kind: 'presence' };

export interface MessageSpec {
  readonly name: string;
  readonly fields: Readonly<Record<number, FieldSpec>>;
  /** Called with the decoded object when the message ends; may throw to abort decoding. */
  readonly onEnd?: (value: DecodedMessage, depth: number) => void;
}

export type DecodedMessage = Record<string, unknown>;

/** Thrown for bytes that are not a well-formed protobuf message. */
export class ProtoFormatError extends Error {}

const MAX_STRING_BYTES = 64 * 1024;
const MAX_DEPTH = 64;

enum State {
  Tag,
  Varint,
  Length,
  Skip,
  Collect,
}

interface Frame {
  readonly spec: MessageSpec;
  readonly value: DecodedMessage;
  readonly end: number;
}

export class ProtoStreamDecoder {
  private readonly stack: Frame[];
  private readonly root: DecodedMessage = {};
  private pos = 0;
  private state = State.Tag;
  private varint = 0;
  private shift = 0;
  private varintBytes = 0;
  private field: FieldSpec | undefined;
  private wire = 0;
  private remaining = 0;
  private collected: Buffer[] = [];

  constructor(rootSpec: MessageSpec) {
    this.stack = [{ spec: rootSpec, value: this.root, end: Number.POSITIVE_INFINITY }];
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.pos;
  }

  write(chunk: Uint8Array): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.state) {
        case State.Skip: {
          const take = Math.min(this.remaining, n - i);
          i += take;
          this.pos += take;
          this.remaining -= take;
          if (this.remaining === 0) this.fieldDone();
          break;
        }
        case State.Collect: {
          const take = Math.min(this.remaining, n - i);
          this.collected.push(Buffer.from(chunk.subarray(i, i + take)));
          i += take;
          this.pos += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            const text = Buffer.concat(this.collected).toString('utf8');
            this.collected = [];
            this.assign(text);
            this.fieldDone();
          }
          break;
        }
        default: {
          const byte = chunk[i] as number;
          i++;
          this.pos++;
          if (this.varintBytes === 10)
            throw new ProtoFormatError(`varint longer than 10 bytes at offset ${this.pos}`);
          this.varint += (byte & 0x7f) * 2 ** this.shift;
          this.shift += 7;
          this.varintBytes++;
          if (byte & 0x80) break;
          const value = this.varint;
          this.varint = 0;
          this.shift = 0;
          this.varintBytes = 0;
          this.onVarint(value);
        }
      }
    }
  }

  /** Signals the end of input; throws if it ended inside a field or message. Returns the decoded root. */
  end(): DecodedMessage {
    if (this.state !== State.Tag || this.varintBytes !== 0 || this.stack.length > 1) {
      throw new ProtoFormatError(
        `input ends inside a ${this.top().spec.name} message at offset ${this.pos} (truncated?)`,
      );
    }
    this.top().spec.onEnd?.(this.root, 0);
    return this.root;
  }

  private top(): Frame {
    return this.stack[this.stack.length - 1] as Frame;
  }

  private onVarint(value: number): void {
    switch (this.state) {
      case State.Tag: {
        const fieldNo = Math.floor(value / 8);
        this.wire = value % 8;
        if (fieldNo === 0) throw new ProtoFormatError(`field number 0 at offset ${this.pos}`);
        this.field = this.top().spec.fields[fieldNo];
        if (this.field && this.field.kind !== 'varint' && this.wire !== 2) {
          throw new ProtoFormatError(
            `${this.top().spec.name}.${this.field.name} has wire type ${this.wire}, expected 2`,
          );
        }
        if (this.wire === 0) this.state = State.Varint;
        else if (this.wire === 2) this.state = State.Length;
        else if (this.wire === 1 || this.wire === 5) this.beginSkip(this.wire === 1 ? 8 : 4);
        else throw new ProtoFormatError(`unsupported wire type ${this.wire} at offset ${this.pos}`);
        return;
      }
      case State.Varint:
        if (this.field?.kind === 'varint') this.assign(value);
        this.fieldDone();
        return;
      case State.Length: {
        if (this.pos + value > this.top().end) {
          throw new ProtoFormatError(
            `${this.top().spec.name} field of ${value} bytes overruns its message at offset ${this.pos}`,
          );
        }
        const field = this.field;
        if (field?.kind === 'message') {
          if (this.stack.length >= MAX_DEPTH)
            throw new ProtoFormatError(`messages nested deeper than ${MAX_DEPTH} levels`);
          const child: DecodedMessage = {};
          this.assign(child);
          this.stack.push({ spec: field.type(), value: child, end: this.pos + value });
          this.state = State.Tag;
          this.popEnded();
        } else if (field?.kind === 'string' && value <= MAX_STRING_BYTES) {
          if (value === 0) {
            this.assign('');
            this.fieldDone();
          } else {
            this.remaining = value;
            this.state = State.Collect;
          }
        } else {
          if (field?.kind === 'presence') this.assign(true);
          this.beginSkip(value);
        }
        return;
      }
      default:
        throw new ProtoFormatError('decoder in an impossible state');
    }
  }

  private beginSkip(bytes: number): void {
    if (bytes === 0) {
      this.fieldDone();
      return;
    }
    if (this.pos + bytes > this.top().end)
      throw new ProtoFormatError(`field overruns its message at offset ${this.pos}`);
    this.remaining = bytes;
    this.state = State.Skip;
  }

  private assign(value: unknown): void {
    const field = this.field;
    if (!field) return;
    const target = this.top().value;
    if ('repeated' in field && field.repeated) {
      const list = (target[field.name] as unknown[] | undefined) ?? [];
      list.push(value);
      target[field.name] = list;
    } else {
      target[field.name] = value;
    }
  }

  private fieldDone(): void {
    this.state = State.Tag;
    this.field = undefined;
    this.popEnded();
  }

  private popEnded(): void {
    while (this.stack.length > 1) {
      const frame = this.top();
      if (this.pos < frame.end) return;
      if (this.pos > frame.end)
        throw new ProtoFormatError(`${frame.spec.name} overruns its length at offset ${this.pos}`);
      this.stack.pop();
      frame.spec.onEnd?.(frame.value, this.stack.length);
    }
  }
}
