/**
 * A push-based, schema-directed protobuf decoder. It is fed a byte stream chunk by chunk, descends only into
 * the message fields its schema names, collects only small scalar and string fields, and skips everything else
 * (weights, mostly) by byte count without buffering it. Memory stays flat however large the input is.
 */

/** What every field spec has: its name in the decoded object, and how repeats are handled. */
interface FieldBase {
  readonly name: string;
  /** The field is `repeated` in the schema: values are collected in an array (at most `maxItems`). A field
   * that is not repeated must appear at most once: protobuf would merge a second occurrence, and a reader that
   * merged differently from onnxruntime would describe a different model than the one that runs. */
  readonly repeated?: boolean;
  /** At most this many values of a repeated field are kept. @default 10,000 */
  readonly maxItems?: number;
  /** `false`: decode (for `onEnd` checks) but do not keep the value: memory stays flat for nodes, weights. */
  readonly retain?: boolean;
}

/** How one field of a message is decoded. */
export type FieldSpec =
  | (FieldBase & { readonly kind: 'message'; readonly type: () => MessageSpec })
  | (FieldBase & { readonly kind: 'varint' })
  | (FieldBase & { readonly kind: 'string' })
  /** Records `true` when the field is present, without decoding it (repeats allowed). */
  | (FieldBase & { readonly kind: 'presence' });

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
const DEFAULT_MAX_ITEMS = 10_000;
/** Everything a decode keeps (objects, strings) is counted against these: hostile inputs made of millions of
 * tiny messages must not turn a small file into a huge heap. */
const MAX_RETAINED_VALUES = 1_000_000;
const MAX_RETAINED_STRING_BYTES = 16 * 1024 * 1024;

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
  /** Reachable from the root: what this message keeps stays in memory until the decode ends. */
  readonly attached: boolean;
  /** Field numbers of the non-repeated fields seen so far in this message. */
  seen?: Set<number>;
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
  private retainedValues = 0;
  private retainedStringBytes = 0;

  constructor(rootSpec: MessageSpec) {
    this.stack = [{ spec: rootSpec, value: this.root, end: Number.POSITIVE_INFINITY, attached: true }];
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
        if (this.field) this.checkOnce(this.field, fieldNo);
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
          const attached = this.top().attached && field.retain !== false;
          this.stack.push({ spec: field.type(), value: child, end: this.pos + value, attached });
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

  /** A field that is not repeated may appear once per message. */
  private checkOnce(field: FieldSpec, fieldNo: number): void {
    if (field.repeated || field.kind === 'presence') return;
    const frame = this.top();
    frame.seen ??= new Set();
    if (frame.seen.has(fieldNo)) {
      throw new ProtoFormatError(
        `${frame.spec.name}.${field.name} appears more than once (offset ${this.pos})`,
      );
    }
    frame.seen.add(fieldNo);
  }

  private assign(value: unknown): void {
    const field = this.field;
    if (!field || field.retain === false) return;
    const attached = this.top().attached;
    if (attached && ++this.retainedValues > MAX_RETAINED_VALUES) {
      throw new ProtoFormatError(
        `more than ${MAX_RETAINED_VALUES} graph values (inputs, dimensions, names): refused`,
      );
    }
    if (attached && typeof value === 'string') {
      this.retainedStringBytes += value.length;
      if (this.retainedStringBytes > MAX_RETAINED_STRING_BYTES) {
        throw new ProtoFormatError(`more than ${MAX_RETAINED_STRING_BYTES} bytes of names: refused`);
      }
    }
    const target = this.top().value;
    if (field.repeated) {
      const list = (target[field.name] as unknown[] | undefined) ?? [];
      if (list.length >= (field.maxItems ?? DEFAULT_MAX_ITEMS)) {
        throw new ProtoFormatError(
          `${this.top().spec.name}.${field.name} has more than ${field.maxItems ?? DEFAULT_MAX_ITEMS} entries`,
        );
      }
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
