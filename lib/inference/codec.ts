/**
 * The tensor codec: Open Inference Protocol JSON tensors ↔ onnxruntime tensors. `decodeInput` checks one
 * request input against the model's signature and fills a typed array directly (no intermediate arrays, no
 * per-element closures); `encodeOutput` turns a result tensor into a response tensor with flat data. The
 * conventions for non-finite floats, 64-bit integers, FP16, BF16 and BYTES are documented in `datatypes.ts`.
 */
import * as ort from 'onnxruntime-node';
import { InferenceRequestError, MaapError } from '../errors.ts';
import type { Datatype, TensorSpec } from '../package/manifest.ts';
import {
  allocateData,
  DATATYPE_INFO,
  type DatatypeInfo,
  datatypeOfOrtType,
  describeBadElement,
  type FillTarget,
  fillRun,
  float16BitsToNumber,
  floatToJson,
  HI,
  LO,
} from './datatypes.ts';

/** An input tensor as it arrives in a request (already checked for field types by `validateRequest`). */
export interface TensorJson {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly data: readonly unknown[];
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** An output tensor as it leaves in a response: flat row-major data. */
export interface ResponseTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: (number | string | boolean)[];
}

export interface DecodeLimits {
  /** Most tensor elements accepted per request (all inputs together). Default 16 777 216. */
  readonly maxElements?: number;
  /** Accept shapes with a 0 dimension (empty tensors; the protocol allows them). Default false: a 400. */
  readonly allowEmpty?: boolean;
}

export const DEFAULT_MAX_ELEMENTS = 16_777_216;

function fail(message: string): never {
  throw new InferenceRequestError(message);
}
const fmtShape = (shape: readonly number[]): string => `[${shape.join(',')}]`;
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Decodes one request input into an onnxruntime tensor after checking it against the model's spec: datatype,
 * rank, fixed dimensions (-1 accepts any size), element count and limit, nested structure and every element.
 * `used` is how many elements earlier inputs of the same request hold (the limit covers all of them).
 * Throws InferenceRequestError naming the input and the problem.
 */
export function decodeInput(
  tensor: TensorJson,
  spec: TensorSpec,
  limits: DecodeLimits = {},
  used = 0,
): ort.Tensor {
  const where = `input ${JSON.stringify(tensor.name)}`;
  const info = checkHeader(tensor, spec, where);
  const total = countElements(tensor.shape, spec.shape, where, limits, used);
  const data = allocateData(spec.datatype, total);
  const words =
    data instanceof BigInt64Array || data instanceof BigUint64Array
      ? new Uint32Array(data.buffer)
      : undefined;
  fillData(tensor, total, { data, words, info }, where);
  return new ort.Tensor(info.ortType as ort.Tensor.Type, data, tensor.shape.slice());
}

function checkHeader(tensor: TensorJson, spec: TensorSpec, where: string): DatatypeInfo {
  if (tensor.parameters && 'binary_data_size' in tensor.parameters) {
    fail(
      `${where}: binary tensor data (parameters.binary_data_size) is not supported; send the data as JSON`,
    );
  }
  if (tensor.datatype !== spec.datatype) {
    fail(`${where}: datatype ${tensor.datatype} does not match the model's ${spec.datatype}`);
  }
  const info = DATATYPE_INFO[spec.datatype];
  if (info.ortType === undefined)
    fail(`${where}: datatype ${spec.datatype} is not supported by onnxruntime-node`);
  return info;
}

/** Checks the request shape against the spec and returns its element count. */
function countElements(
  shape: readonly number[],
  specShape: readonly number[],
  where: string,
  limits: DecodeLimits,
  used: number,
): number {
  for (const [i, d] of shape.entries()) {
    if (!Number.isSafeInteger(d) || d < 0)
      fail(
        `${where}: shape ${fmtShape(shape)}: dimension ${i} is ${d}; dimensions are non-negative integers`,
      );
  }
  if (shape.length !== specShape.length) {
    fail(
      `${where}: shape ${fmtShape(shape)} has rank ${shape.length} but the model expects rank ${specShape.length} ${fmtShape(specShape)}`,
    );
  }
  let total = 1;
  let empty = false;
  for (const [i, d] of shape.entries()) {
    const want = specShape[i] as number;
    if (want >= 0 && d !== want) {
      fail(
        `${where}: shape ${fmtShape(shape)}: dimension ${i} is ${d} but the model expects ${want} ${fmtShape(specShape)}`,
      );
    }
    if (d === 0 && limits.allowEmpty !== true)
      fail(`${where}: shape ${fmtShape(shape)} describes an empty tensor (dimension ${i} is 0)`);
    if (d === 0) empty = true;
    else total *= d;
  }
  // An empty tensor has 0 elements however large its other dimensions, but onnxruntime-node multiplies them all
  // (in float64: beyond 2^53 the count is not exact, and Infinity × 0 is NaN).
  if (empty && total > Number.MAX_SAFE_INTEGER) {
    fail(
      `${where}: shape ${fmtShape(shape)}: its dimensions other than 0 multiply to more than ${Number.MAX_SAFE_INTEGER}`,
    );
  }
  if (empty) total = 0;
  const max = limits.maxElements ?? DEFAULT_MAX_ELEMENTS;
  if (used + total > max) {
    const sum = used > 0 ? `, which brings the request to ${used + total},` : ',';
    const count =
      total > Number.MAX_SAFE_INTEGER
        ? `more than ${Number.MAX_SAFE_INTEGER} elements`
        : plural(total, 'element');
    fail(`${where}: shape ${fmtShape(shape)} has ${count}${sum} more than the limit of ${max}`);
  }
  return total;
}

/**
 * Fills the target from flat or nested data. Flat: a single array of `total` scalars. Nested: exactly the
 * declared shape, walked with an explicit stack of at most `rank` levels, so hostile nesting depth costs
 * nothing (an array where a scalar belongs is an element error, never a recursion).
 */
function fillData(tensor: TensorJson, total: number, target: FillTarget, where: string): void {
  const { data, shape } = tensor;
  const rank = shape.length;
  if (rank <= 1 || !Array.isArray(data[0])) {
    if (data.length !== total) {
      fail(`${where}: shape ${fmtShape(shape)} has ${plural(total, 'element')} but data has ${data.length}`);
    }
    const bad = fillRun(target, data, 0);
    if (bad >= 0) fail(`${where}: data[${bad}] ${describeBadElement(data[bad], target.info)}`);
    return;
  }
  if (data.length !== shape[0]) {
    fail(
      `${where}: nested data has ${plural(data.length, 'row')} but dimension 0 of shape ${fmtShape(shape)} is ${shape[0]}`,
    );
  }
  const arrays: (readonly unknown[])[] = new Array(rank);
  const next: number[] = new Array(rank).fill(0);
  arrays[0] = data;
  let level = 0;
  let offset = 0;
  while (level >= 0) {
    const arr = arrays[level] as readonly unknown[];
    if (level === rank - 1) {
      const bad = fillRun(target, arr, offset);
      if (bad >= 0)
        fail(`${where}: ${pathAt(next, level)}[${bad}] ${describeBadElement(arr[bad], target.info)}`);
      offset += arr.length;
      level--;
      continue;
    }
    const p = next[level] as number;
    if (p === arr.length) {
      level--;
      continue;
    }
    next[level] = p + 1;
    const child = arr[p];
    const want = shape[level + 1] as number;
    if (!Array.isArray(child)) {
      fail(
        `${where}: ${pathAt(next, level + 1)} should be an array of ${want} (shape ${fmtShape(shape)} nests ${rank} levels)`,
      );
    } else if (child.length !== want) {
      fail(
        `${where}: ${pathAt(next, level + 1)} has ${plural(child.length, 'element')} but dimension ${level + 1} of shape ${fmtShape(shape)} is ${want}`,
      );
    }
    arrays[level + 1] = child as readonly unknown[];
    next[level + 1] = 0;
    level++;
  }
}

/** Encodes an onnxruntime result tensor as a response tensor. Throws MaapError (500) for types OIP cannot name. */
export function encodeOutput(name: string, tensor: ort.Tensor): ResponseTensor {
  const datatype = datatypeOfOrtType(tensor.type);
  if (datatype === undefined) {
    throw new MaapError(
      `output ${JSON.stringify(name)}: onnxruntime type ${tensor.type} has no Open Inference Protocol datatype`,
    );
  }
  return {
    name,
    datatype,
    shape: Array.from(tensor.dims),
    data: encodeData(DATATYPE_INFO[datatype], tensor.data),
  };
}

function encodeData(info: DatatypeInfo, src: ort.Tensor.DataType): (number | string | boolean)[] {
  const n = src.length;
  // Filled in order from empty, the array stays packed: JSON.stringify then takes its fast path (a presized
  // `new Array(n)` is holey and goes through the slow, element-by-element one).
  const out: (number | string | boolean)[] = [];
  switch (info.kind) {
    case 'bytes':
      return (src as string[]).slice();
    case 'bool':
      for (let i = 0; i < n; i++) out[i] = src[i] !== 0;
      return out;
    case 'int64':
    case 'uint64':
      return encode64(src as BigInt64Array | BigUint64Array, info.kind === 'int64', out);
    case 'fp16': {
      const bits = src instanceof Uint16Array; // Float16Array (Node 24+) holds numbers already
      for (let i = 0; i < n; i++) {
        const v = bits ? float16BitsToNumber(src[i] as number) : (src[i] as number);
        out[i] = v - v === 0 ? v : floatToJson(v);
      }
      return out;
    }
    case 'fp32':
    case 'fp64':
      for (let i = 0; i < n; i++) {
        const v = src[i] as number;
        out[i] = v - v === 0 ? v : floatToJson(v);
      }
      return out;
    default:
      for (let i = 0; i < n; i++) out[i] = src[i] as number;
      return out;
  }
}

/** 64-bit integers: JSON numbers when safe integers, decimal strings otherwise; read as two 32-bit words. */
function encode64(src: BigInt64Array | BigUint64Array, signed: boolean, out: (number | string | boolean)[]) {
  const words = new Uint32Array(src.buffer, src.byteOffset, src.length * 2);
  for (let i = 0; i < src.length; i++) {
    const hi = signed ? (words[2 * i + HI] as number) | 0 : (words[2 * i + HI] as number);
    if (hi >= -2097152 && hi < 2097152) {
      const v = hi * 4294967296 + (words[2 * i + LO] as number);
      if (v !== -9007199254740992) {
        out[i] = v;
        continue;
      }
    }
    out[i] = String(src[i]);
  }
  return out;
}

/** Where the nested walk is (`data[1][0]`): `next` holds, per level, the index after the one being read. */
function pathAt(next: readonly number[], level: number): string {
  let s = 'data';
  for (let k = 0; k < level; k++) s += `[${(next[k] as number) - 1}]`;
  return s;
}
