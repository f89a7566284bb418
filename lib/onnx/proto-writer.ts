/**
 * Protocol Buffers wire-format encoding primitives (https://protobuf.dev/programming-guides/encoding/),
 * hand-written so that maap can produce ONNX files without a protobuf dependency. Only the encoding side
 * and only the wire types ONNX needs: varint (0), length-delimited (2) and 32-bit (5).
 */

export const WIRE_VARINT = 0;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

export type Int = number | bigint;

const UINT64_MAX = (1n << 64n) - 1n;

/** The unsigned 64-bit value protobuf puts on the wire for an int32/int64/uint64 (two's complement). */
function toUint64(value: Int): bigint {
  const big = typeof value === 'bigint' ? value : BigInt(checkInteger(value));
  if (big < -(1n << 63n) || big > UINT64_MAX) throw new RangeError(`varint out of 64-bit range: ${big}`);
  return BigInt.asUintN(64, big);
}

function checkInteger(value: number): number {
  if (!Number.isSafeInteger(value)) throw new RangeError(`not a safe integer: ${value}`);
  return value;
}

/** Encodes one varint (negative numbers as 10-byte two's complement, as protobuf does for int64). */
export function encodeVarint(value: Int): Buffer {
  let v = toUint64(value);
  const bytes: number[] = [];
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return Buffer.from(bytes);
}

/** Bytes a varint takes on the wire, without encoding it. */
export function varintLength(value: Int): number {
  let v = toUint64(value);
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/** A field key: field number and wire type. */
export function encodeTag(field: number, wireType: number): Buffer {
  if (!Number.isInteger(field) || field < 1 || field > 0x1fffffff)
    throw new RangeError(`bad field number ${field}`);
  return encodeVarint(field * 8 + wireType);
}

/** Bytes of the key plus the length prefix of a length-delimited field whose payload is `length` bytes. */
export function lenHeaderLength(field: number, length: number): number {
  return varintLength(field * 8 + WIRE_LEN) + varintLength(length);
}

/**
 * Accumulates the fields of one message. Sub-messages are encoded into their own writer first (their size is
 * then known) and appended with `message`. `finish` concatenates once.
 */
export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  /** Encoded size so far, in bytes. */
  get length(): number {
    return this.size;
  }

  private push(part: Uint8Array): this {
    this.parts.push(part);
    this.size += part.byteLength;
    return this;
  }

  /** int32, int64, uint64, enum or bool field (wire type 0). */
  varint(field: number, value: Int): this {
    return this.push(encodeTag(field, WIRE_VARINT)).push(encodeVarint(value));
  }

  /** `float` field (wire type 5, little-endian IEEE 754 single). */
  float(field: number, value: number): this {
    const buf = Buffer.alloc(4);
    buf.writeFloatLE(value);
    return this.push(encodeTag(field, WIRE_FIXED32)).push(buf);
  }

  /** `string` (UTF-8) or `bytes` field. */
  bytes(field: number, value: string | Uint8Array): this {
    const buf = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    return this.header(field, buf.byteLength).push(buf);
  }

  /** Embedded message field. */
  message(field: number, value: ProtoWriter): this {
    return this.header(field, value.length).append(value);
  }

  /** Appends the fields of another writer (for a message whose header was written with `header`). */
  append(other: ProtoWriter): this {
    for (const part of other.parts) this.push(part);
    return this;
  }

  /** Key and length prefix only: the caller promises to append (or stream) exactly `length` payload bytes. */
  header(field: number, length: number): this {
    return this.push(encodeTag(field, WIRE_LEN)).push(encodeVarint(checkInteger(length)));
  }

  /** Appends bytes verbatim (the payload announced by `header`). */
  raw(value: Uint8Array): this {
    return this.push(value);
  }

  /** Unpacked repeated varints (proto2 `repeated int64 x = n;`: one key per element, as onnx writes dims). */
  repeatedVarints(field: number, values: Iterable<Int>): this {
    for (const value of values) this.varint(field, value);
    return this;
  }

  /** Unpacked repeated floats (proto2 `repeated float x = n;`). */
  repeatedFloats(field: number, values: Iterable<number>): this {
    for (const value of values) this.float(field, value);
    return this;
  }

  /** Packed repeated varints (`repeated int64 x = n [packed = true]`). Writes nothing for an empty list. */
  packedVarints(field: number, values: Iterable<Int>): this {
    const encoded = Array.from(values, encodeVarint);
    if (encoded.length === 0) return this;
    const payload = Buffer.concat(encoded);
    return this.header(field, payload.byteLength).push(payload);
  }

  /** Packed repeated floats. Writes nothing for an empty list. */
  packedFloats(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    const payload = Buffer.alloc(values.length * 4);
    for (let i = 0; i < values.length; i++) payload.writeFloatLE(values[i] as number, i * 4);
    return this.header(field, payload.byteLength).push(payload);
  }

  /** The encoded message. */
  finish(): Buffer {
    return Buffer.concat(this.parts, this.size);
  }
}
