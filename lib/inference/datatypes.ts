/**
 * Open Inference Protocol datatypes ↔ onnxruntime-node tensor types, and the conversions the JSON codec needs.
 *
 * Decisions (the protocol leaves them to the server):
 * - FP16/FP32/FP64 accept JSON numbers and the strings "NaN", "Infinity", "-Infinity" (JSON has no literal for
 *   them); responses carry non-finite floats as those same strings, which the protocol's `tensor_data` schema
 *   allows (number | string | boolean) where `null` would not be. A finite number that overflows the type
 *   (1e39 as FP32, 70000 as FP16) is refused rather than silently turned into Infinity, and so is a number that is
 *   not finite (a literal beyond float64, 1e400, reads as Infinity).
 * - Integer types accept JSON numbers that are integers within the type's range; never strings, booleans or
 *   fractions. INT64/UINT64 also accept decimal strings (for values beyond 2^53, which a JSON number cannot
 *   carry exactly); a JSON number that is not a safe integer is refused because its value is already rounded.
 *   Responses carry 64-bit integers as JSON numbers when they are safe integers, as decimal strings otherwise.
 * - FP16 travels as JSON numbers; onnxruntime-node wants the raw IEEE binary16 bits in a Uint16Array (Node
 *   before 24 has no Float16Array). Numbers are rounded straight from float64 to binary16 (round half to even),
 *   never via float32, which would round twice.
 * - BF16: onnxruntime-node has no bfloat16 tensor type, and it cannot even create a session for a model whose
 *   graph inputs or outputs are bfloat16 ("Unsupported data type: 16"). The codec refuses BF16 by name.
 * - BOOL accepts only true/false; BYTES only strings without NUL (onnxruntime truncates a string at NUL) and
 *   without lone surrogates (not encodable as UTF-8; onnxruntime would substitute U+FFFD).
 */
import type * as ort from 'onnxruntime-node';
import type { Datatype } from '../package/manifest.ts';

/** How the codec reads and writes elements of a datatype. */
export type ElementKind =
  | 'bool'
  | 'int'
  | 'int64'
  | 'uint64'
  | 'fp16'
  | 'fp32'
  | 'fp64'
  | 'bytes'
  | 'unsupported';
type NumericData = Exclude<ort.Tensor.DataType, string[]>;

export interface DatatypeInfo {
  readonly datatype: Datatype;
  /** The onnxruntime-node tensor type, or undefined when onnxruntime-node cannot carry the type (BF16). */
  readonly ortType: ort.Tensor.Type | undefined;
  /** The typed array backing such a tensor; undefined for BYTES (a string[]) and BF16. */
  readonly array: (new (n: number) => NumericData) | undefined;
  readonly kind: ElementKind;
  /** Inclusive range of the integer types up to 32 bits (64-bit ranges: INT64_MIN..UINT64_MAX below). */
  readonly min: number;
  readonly max: number;
  /** Whether NaN and ±Infinity are values of the type (FP16/FP32/FP64). */
  readonly nonFinite: boolean;
}

function info(
  datatype: Datatype,
  ortType: ort.Tensor.Type | undefined,
  array: DatatypeInfo['array'],
  kind: ElementKind,
  [min, max] = [0, 0],
): DatatypeInfo {
  return {
    datatype,
    ortType,
    array,
    kind,
    min,
    max,
    nonFinite: kind === 'fp16' || kind === 'fp32' || kind === 'fp64',
  };
}

export const DATATYPE_INFO: Readonly<Record<Datatype, DatatypeInfo>> = {
  BOOL: info('BOOL', 'bool', Uint8Array, 'bool'),
  UINT8: info('UINT8', 'uint8', Uint8Array, 'int', [0, 255]),
  UINT16: info('UINT16', 'uint16', Uint16Array, 'int', [0, 65535]),
  UINT32: info('UINT32', 'uint32', Uint32Array, 'int', [0, 4294967295]),
  UINT64: info('UINT64', 'uint64', BigUint64Array, 'uint64'),
  INT8: info('INT8', 'int8', Int8Array, 'int', [-128, 127]),
  INT16: info('INT16', 'int16', Int16Array, 'int', [-32768, 32767]),
  INT32: info('INT32', 'int32', Int32Array, 'int', [-2147483648, 2147483647]),
  INT64: info('INT64', 'int64', BigInt64Array, 'int64'),
  FP16: info('FP16', 'float16', Uint16Array, 'fp16'), // IEEE binary16 bits
  BF16: info('BF16', undefined, undefined, 'unsupported'),
  FP32: info('FP32', 'float32', Float32Array, 'fp32'),
  FP64: info('FP64', 'float64', Float64Array, 'fp64'),
  BYTES: info('BYTES', 'string', undefined, 'bytes'),
};

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
export const UINT64_MAX = 2n ** 64n - 1n;

const ORT_TO_DATATYPE = new Map<string, Datatype>();
for (const i of Object.values(DATATYPE_INFO)) if (i.ortType) ORT_TO_DATATYPE.set(i.ortType, i.datatype);

/** The protocol datatype of an onnxruntime tensor type; undefined for types the protocol cannot name (int4, ...). */
export function datatypeOfOrtType(type: string): Datatype | undefined {
  return ORT_TO_DATATYPE.get(type);
}

/** Whether onnxruntime-node can carry tensors of this datatype. */
export function isSupportedDatatype(datatype: Datatype): boolean {
  return DATATYPE_INFO[datatype].ortType !== undefined;
}

/** The typed array (or string array) that backs an onnxruntime tensor of this datatype with n elements. */
export function allocateData(datatype: Datatype, n: number): ort.Tensor.DataType {
  const { array, kind } = DATATYPE_INFO[datatype];
  if (array) return new array(n);
  if (kind === 'bytes') return new Array<string>(n).fill('');
  throw new RangeError(`datatype ${datatype} has no onnxruntime-node tensor type`);
}

/** The number a non-finite float token stands for, or undefined when the string is not one of them. */
export function parseNonFinite(s: string): number | undefined {
  if (s === 'NaN') return Number.NaN;
  if (s === 'Infinity') return Number.POSITIVE_INFINITY;
  if (s === '-Infinity') return Number.NEGATIVE_INFINITY;
  return undefined;
}

/** The JSON form of a float element: the number itself, or "NaN" / "Infinity" / "-Infinity". */
export function floatToJson(v: number): number | string {
  if (v - v === 0) return v;
  return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
}

/** True on little-endian hosts: the low 32-bit word of a 64-bit value comes first in memory. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Index of the low and high 32-bit word of a 64-bit element inside a Uint32Array/Int32Array view. */
export const LO = LITTLE_ENDIAN ? 0 : 1;
export const HI = LITTLE_ENDIAN ? 1 : 0;

const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);

/**
 * IEEE 754 binary16 bits of a number, rounded to nearest with ties to even, straight from float64. Finite values
 * at or beyond 65520 become ±Infinity, NaN becomes the quiet NaN 0x7e00, -0 keeps its sign.
 */
export function float64ToFloat16Bits(v: number): number {
  f64[0] = v;
  const hi = f64Words[HI] as number;
  const lo = f64Words[LO] as number;
  const sign = (hi >>> 16) & 0x8000;
  const exp = ((hi >>> 20) & 0x7ff) - 1023;
  if (exp === 1024) return (hi & 0xfffff) !== 0 || lo !== 0 ? sign | 0x7e00 : sign | 0x7c00;
  if (exp > 15) return sign | 0x7c00;
  if (exp >= -14) {
    // Normal: keep 10 of the 52 mantissa bits; bit 9 of `hi` is the rounding bit, everything below it sticky.
    let h = ((exp + 15) << 10) | ((hi >>> 10) & 0x3ff);
    if ((hi & 0x200) !== 0 && ((hi & 0x1ff) !== 0 || lo !== 0 || (h & 1) !== 0)) h++; // a carry may reach Infinity
    return sign | h;
  }
  if (exp < -25) return sign;
  // Subnormal (or rounds up to the smallest normal): units of 2^-24; scaling by a power of two is exact.
  const x = Math.abs(v) * 16777216;
  let m = Math.floor(x);
  const rest = x - m;
  if (rest > 0.5 || (rest === 0.5 && (m & 1) === 1)) m++;
  return sign | m;
}

let halfTable: Float32Array | undefined;

/** The value of IEEE 754 binary16 bits (a float32 table holds all 65536 exactly; built on first use). */
export function float16BitsToNumber(h: number): number {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) {
      const e = (i >>> 10) & 0x1f;
      const m = i & 0x3ff;
      let mag = (1024 + m) * 2 ** (e - 25);
      if (e === 0) mag = m * 2 ** -24;
      else if (e === 31) mag = m === 0 ? Number.POSITIVE_INFINITY : Number.NaN;
      halfTable[i] = i & 0x8000 ? -mag : mag;
    }
  }
  return halfTable[h & 0xffff] as number;
}

/** Where `fillRun` writes: the tensor's backing array, a 32-bit word view for 64-bit types, the datatype. */
export interface FillTarget {
  readonly data: ort.Tensor.DataType;
  readonly words: Uint32Array | undefined;
  readonly info: DatatypeInfo;
}

/** |v| at or beyond this rounds to Infinity in float32 (FLT_MAX plus half an ulp, a tie that goes to even). */
const FP32_OVERFLOW = 2 ** 128 - 2 ** 103;

/**
 * Converts and writes `src` (scalars only) to the target starting at element `offset`. Returns -1, or the index
 * in `src` of the first element the datatype refuses (see `describeBadElement` for why). One specialised loop
 * per kind, so the hot path has no per-element dispatch, closure or allocation (except BigInts from strings).
 */
export function fillRun(target: FillTarget, src: readonly unknown[], offset: number): number {
  const { info } = target;
  const n = src.length;
  switch (info.kind) {
    case 'fp32':
    case 'fp64': {
      const dst = target.data as Float32Array | Float64Array;
      const f32 = info.kind === 'fp32';
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v === 'number') {
          // A number that is not finite came from a literal beyond float64 (1e400 parses as Infinity) or from a
          // caller that is not JSON: refused like any overflow; the non-finite values travel as strings.
          if (v - v !== 0 || (f32 && (v >= FP32_OVERFLOW || v <= -FP32_OVERFLOW))) return i;
          dst[offset + i] = v;
        } else {
          const s = typeof v === 'string' ? parseNonFinite(v) : undefined;
          if (s === undefined) return i;
          dst[offset + i] = s;
        }
      }
      return -1;
    }
    case 'fp16': {
      const dst = target.data as Uint16Array;
      for (let i = 0; i < n; i++) {
        const v = src[i];
        const x = typeof v === 'number' ? v : typeof v === 'string' ? parseNonFinite(v) : undefined;
        if (x === undefined || (typeof v === 'number' && v - v !== 0)) return i; // a non-finite number: as above
        const h = float64ToFloat16Bits(x);
        if ((h & 0x7fff) === 0x7c00 && x - x === 0) return i; // finite overflow
        dst[offset + i] = h;
      }
      return -1;
    }
    case 'int': {
      const dst = target.data as Exclude<NumericData, BigInt64Array | BigUint64Array>;
      const { min, max } = info;
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'number' || !(v >= min && v <= max) || Math.floor(v) !== v) return i;
        dst[offset + i] = v;
      }
      return -1;
    }
    case 'int64':
    case 'uint64': {
      const dst = target.data as BigInt64Array | BigUint64Array;
      const words = target.words as Uint32Array;
      const signed = info.kind === 'int64';
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v === 'number') {
          if (!Number.isSafeInteger(v) || (v < 0 && !signed)) return i;
          const j = 2 * (offset + i);
          words[j + LO] = v >>> 0; // ToUint32 is v mod 2^32: the low word of the two's complement
          words[j + HI] = Math.floor(v / 4294967296) >>> 0;
        } else {
          const b = typeof v === 'string' ? parseInt64(v, signed) : undefined;
          if (b === undefined) return i;
          dst[offset + i] = b;
        }
      }
      return -1;
    }
    case 'bool': {
      const dst = target.data as Uint8Array;
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (v === true) dst[offset + i] = 1;
        else if (v !== false) return i;
      }
      return -1;
    }
    case 'bytes': {
      const dst = target.data as string[];
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'string' || !isCarryableString(v)) return i;
        dst[offset + i] = v;
      }
      return -1;
    }
    default:
      return n > 0 ? 0 : -1;
  }
}

const INT64_STRING = /^-?[0-9]{1,20}$/;

/** A decimal string as a 64-bit integer, or undefined when it is not one or is out of range. */
export function parseInt64(s: string, signed: boolean): bigint | undefined {
  if (!INT64_STRING.test(s)) return undefined;
  const b = BigInt(s);
  return signed
    ? b >= INT64_MIN && b <= INT64_MAX
      ? b
      : undefined
    : b >= 0n && b <= UINT64_MAX
      ? b
      : undefined;
}

type WellFormed = { isWellFormed(): boolean };

/** onnxruntime passes strings as NUL-terminated UTF-8: a NUL would truncate, a lone surrogate become U+FFFD. */
function isCarryableString(s: string): boolean {
  return !s.includes('\0') && (s as unknown as WellFormed).isWellFormed();
}

function show(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** Why `fillRun` refused an element, phrased to follow "data[i] ". */
export function describeBadElement(v: unknown, info: DatatypeInfo): string {
  const { datatype, kind } = info;
  const got = show(v);
  switch (kind) {
    case 'fp16':
    case 'fp32':
    case 'fp64':
      if (typeof v === 'number' && Number.isNaN(v))
        return `is NaN, not a JSON number; send "NaN" as a string if that is meant`;
      if (typeof v === 'number' && v - v !== 0)
        return `is ${got}, a number beyond the range of ${datatype} (a literal such as 1e400 reads as Infinity); send "NaN", "Infinity" or "-Infinity" as a string if that is meant`;
      if (typeof v === 'number') return `is ${got}, out of range for ${datatype}`;
      return `is ${got}; ${datatype} takes JSON numbers (or "NaN", "Infinity", "-Infinity")`;
    case 'int':
      if (typeof v !== 'number') return `is ${got}; ${datatype} takes JSON integers`;
      if (Math.floor(v) !== v) return `is ${got}, not an integer (${datatype})`;
      return `is ${got}, out of range for ${datatype} (${info.min}..${info.max})`;
    case 'int64':
    case 'uint64': {
      const range = kind === 'int64' ? `${INT64_MIN}..${INT64_MAX}` : `0..${UINT64_MAX}`;
      if (typeof v === 'number') {
        if (Math.floor(v) !== v) return `is ${got}, not an integer (${datatype})`;
        if (v < 0 && kind === 'uint64') return `is ${got}, out of range for ${datatype} (${range})`;
        return `is ${got}, beyond 2^53: a JSON number cannot carry it exactly; send it as a decimal string`;
      }
      if (typeof v === 'string' && INT64_STRING.test(v))
        return `is ${got}, out of range for ${datatype} (${range})`;
      return `is ${got}; ${datatype} takes JSON integers or decimal strings`;
    }
    case 'bool':
      return `is ${got}; BOOL takes true or false`;
    case 'bytes':
      if (typeof v !== 'string') return `is ${got}; BYTES takes strings`;
      if (v.includes('\0')) return 'contains a NUL character, which onnxruntime cannot carry in a string';
      return 'contains an unpaired UTF-16 surrogate, which is not valid Unicode';
    default:
      return `cannot be decoded: datatype ${datatype} is not supported by onnxruntime-node`;
  }
}
