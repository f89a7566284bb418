/**
 * A small ONNX model writer: describe a model as plain data, get the bytes of a `ModelProto`
 * (onnx/onnx.proto, field numbers below), or stream a model with one huge initializer to disk.
 * Used to make real test models (there is no Python onnx here) and by tools that emit ONNX.
 */
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { type Int, lenHeaderLength, ProtoWriter } from './proto-writer.ts';

/** `TensorProto.DataType` values. */
export const ELEM_TYPES = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;
export type ElemType = keyof typeof ELEM_TYPES;
export type FixedElemType = Exclude<ElemType, 'STRING'>;

/** Bytes per element in `raw_data` (little-endian; BOOL is one byte, FLOAT16/BFLOAT16 are raw uint16 bits). */
// biome-ignore format: a table
export const ELEM_SIZES: Record<FixedElemType, number> = {
  FLOAT: 4, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, INT32: 4, INT64: 8,
  BOOL: 1, FLOAT16: 2, DOUBLE: 8, UINT32: 4, UINT64: 8, BFLOAT16: 2,
};

/** The typed array that holds each element type (a `Uint8Array`/`Buffer` is accepted for any type, as raw bytes). */
// biome-ignore format: a table
const TYPED_ARRAYS: Record<FixedElemType, abstract new (...args: never[]) => ArrayBufferView> = {
  FLOAT: Float32Array, UINT8: Uint8Array, INT8: Int8Array, UINT16: Uint16Array, INT16: Int16Array,
  INT32: Int32Array, INT64: BigInt64Array, BOOL: Uint8Array, FLOAT16: Uint16Array, DOUBLE: Float64Array,
  UINT32: Uint32Array, UINT64: BigUint64Array, BFLOAT16: Uint16Array,
};

/** A dimension: a size, a symbolic name (`dim_param`), or `null` for an unknown dimension. */
export type Dim = number | string | null;
/** A value's type: a tensor (shape omitted = unknown rank), a sequence, or a map. */
export type ValueType =
  | { elemType: ElemType; shape?: Dim[] }
  | { sequence: ValueType }
  | { map: { key: ElemType; value: ValueType } };
export type ValueInfo = { name: string } & ValueType;

// biome-ignore format: a list
export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/** Where a tensor's bytes live when they are not in the model (`TensorProto.external_data`). */
export interface ExternalData {
  location: string;
  offset?: number;
  length?: number;
}
/** A tensor: inline data (typed array, raw bytes or strings) or a reference to external data. */
export type TensorSpec = { name?: string; elemType: ElemType; dims: number[] } & (
  | { data: TypedArray | string[] }
  | { external: ExternalData }
);
export type Initializer = TensorSpec & { name: string };

/** An attribute value, tagged by its `AttributeProto.AttributeType`. */
// biome-ignore format: a list
export type AttributeValue =
  | { float: number } | { int: Int } | { string: string } | { tensor: TensorSpec } | { graph: GraphSpec }
  | { floats: number[] } | { ints: Int[] } | { strings: string[] } | { tensors: TensorSpec[] } | { graphs: GraphSpec[] };

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attributes?: Record<string, AttributeValue>;
}
export interface GraphSpec {
  name: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  nodes: NodeSpec[];
  initializers?: Initializer[];
  valueInfo?: ValueInfo[];
  docString?: string;
}
export interface OpsetImport {
  domain: string;
  version: number;
}
export interface ModelSpec {
  /** Default 8. */
  irVersion?: number;
  /** Version of the default ('' = ai.onnx) domain. Default 17. Ignored when `opsetImports` is given. */
  opset?: number;
  /** Every imported opset, verbatim (replaces the default `[{ domain: '', version: opset }]`). */
  opsetImports?: OpsetImport[];
  producer?: { name: string; version: string };
  domain?: string;
  modelVersion?: number;
  docString?: string;
  metadata?: Record<string, string>;
  graph: GraphSpec;
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((n, d) => {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`bad dimension ${d}`);
    return n * d;
  }, 1);
}

function rawBytes(name: string, elemType: FixedElemType, dims: number[], data: TypedArray): Uint8Array {
  if (!(data instanceof Uint8Array || data instanceof TYPED_ARRAYS[elemType])) {
    throw new TypeError(`tensor ${name}: ${data.constructor.name} does not hold ${elemType}`);
  }
  if (data.BYTES_PER_ELEMENT > 1 && endianness() !== 'LE')
    throw new Error('raw_data needs a little-endian host');
  const expected = elementCount(dims) * ELEM_SIZES[elemType];
  if (data.byteLength !== expected) {
    throw new RangeError(`tensor ${name}: ${data.byteLength} bytes of data where ${expected} are expected`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorHead(name: string | undefined, elemType: ElemType, dims: number[]): ProtoWriter {
  const w = new ProtoWriter().repeatedVarints(1, dims).varint(2, ELEM_TYPES[elemType]);
  return name === undefined ? w : w.bytes(8, name);
}

export function encodeTensor(t: TensorSpec): ProtoWriter {
  const w = tensorHead(t.name, t.elemType, t.dims);
  if ('external' in t) {
    const { location, offset, length } = t.external;
    const entries: [string, string][] = [['location', location]];
    if (offset !== undefined) entries.push(['offset', String(offset)]);
    if (length !== undefined) entries.push(['length', String(length)]);
    for (const [key, value] of entries) w.message(13, new ProtoWriter().bytes(1, key).bytes(2, value));
    return w.varint(14, 1); // data_location = EXTERNAL
  }
  const { elemType, data } = t;
  const name = t.name ?? '(unnamed)';
  if (elemType === 'STRING') {
    if (!Array.isArray(data)) throw new TypeError(`tensor ${name}: STRING data must be a string[]`);
    if (data.length !== elementCount(t.dims)) throw new RangeError(`tensor ${name}: wrong element count`);
    for (const s of data) w.bytes(6, s);
    return w;
  }
  if (Array.isArray(data)) throw new TypeError(`tensor ${name}: string[] data for ${elemType}`);
  return w.bytes(9, rawBytes(name, elemType, t.dims, data));
}

function encodeShape(shape: Dim[]): ProtoWriter {
  const w = new ProtoWriter();
  for (const dim of shape) {
    const d = new ProtoWriter();
    if (typeof dim === 'number') d.varint(1, dim);
    else if (typeof dim === 'string') d.bytes(2, dim);
    w.message(1, d);
  }
  return w;
}

export function encodeType(t: ValueType): ProtoWriter {
  if ('sequence' in t)
    return new ProtoWriter().message(4, new ProtoWriter().message(1, encodeType(t.sequence)));
  if ('map' in t) {
    const map = new ProtoWriter().varint(1, ELEM_TYPES[t.map.key]).message(2, encodeType(t.map.value));
    return new ProtoWriter().message(5, map);
  }
  const tensor = new ProtoWriter().varint(1, ELEM_TYPES[t.elemType]);
  if (t.shape !== undefined) tensor.message(2, encodeShape(t.shape));
  return new ProtoWriter().message(1, tensor);
}

function encodeValueInfo(v: ValueInfo): ProtoWriter {
  return new ProtoWriter().bytes(1, v.name).message(2, encodeType(v));
}

function encodeAttribute(name: string, v: AttributeValue): ProtoWriter {
  const w = new ProtoWriter().bytes(1, name);
  if ('float' in v) return w.varint(20, 1).float(2, v.float);
  if ('int' in v) return w.varint(20, 2).varint(3, v.int);
  if ('string' in v) return w.varint(20, 3).bytes(4, v.string);
  if ('tensor' in v) return w.varint(20, 4).message(5, encodeTensor(v.tensor));
  if ('graph' in v) return w.varint(20, 5).message(6, encodeGraph(v.graph));
  if ('floats' in v) return w.varint(20, 6).repeatedFloats(7, v.floats);
  if ('ints' in v) return w.varint(20, 7).repeatedVarints(8, v.ints);
  if ('strings' in v) {
    for (const s of v.strings) w.bytes(9, s);
    return w.varint(20, 8);
  }
  if ('tensors' in v) {
    for (const t of v.tensors) w.message(10, encodeTensor(t));
    return w.varint(20, 9);
  }
  for (const g of v.graphs) w.message(11, encodeGraph(g));
  return w.varint(20, 10);
}

function encodeNode(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const input of n.inputs) w.bytes(1, input);
  for (const output of n.outputs) w.bytes(2, output);
  if (n.name !== undefined) w.bytes(3, n.name);
  w.bytes(4, n.opType);
  for (const [name, value] of Object.entries(n.attributes ?? {})) w.message(5, encodeAttribute(name, value));
  if (n.domain !== undefined) w.bytes(7, n.domain);
  return w;
}

export function encodeGraph(g: GraphSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const node of g.nodes) w.message(1, encodeNode(node));
  w.bytes(2, g.name);
  for (const init of g.initializers ?? []) w.message(5, encodeTensor(init));
  if (g.docString !== undefined) w.bytes(10, g.docString);
  for (const input of g.inputs) w.message(11, encodeValueInfo(input));
  for (const output of g.outputs) w.message(12, encodeValueInfo(output));
  for (const info of g.valueInfo ?? []) w.message(13, encodeValueInfo(info));
  return w;
}

/** Every `ModelProto` field except `graph`, which callers append last (so it can be streamed). */
function encodeModelHead(m: ModelSpec): ProtoWriter {
  const w = new ProtoWriter().varint(1, m.irVersion ?? 8);
  if (m.producer) w.bytes(2, m.producer.name).bytes(3, m.producer.version);
  if (m.domain !== undefined) w.bytes(4, m.domain);
  if (m.modelVersion !== undefined) w.varint(5, m.modelVersion);
  if (m.docString !== undefined) w.bytes(6, m.docString);
  for (const { domain, version } of m.opsetImports ?? [{ domain: '', version: m.opset ?? 17 }]) {
    w.message(8, new ProtoWriter().bytes(1, domain).varint(2, version));
  }
  for (const [key, value] of Object.entries(m.metadata ?? {})) {
    w.message(14, new ProtoWriter().bytes(1, key).bytes(2, value));
  }
  return w;
}

/** The bytes of a complete `.onnx` file. */
export function encodeModel(model: ModelSpec): Buffer {
  return encodeModelHead(model).message(7, encodeGraph(model.graph)).finish();
}

/** An initializer whose `raw_data` is produced chunk by chunk while the file is written. */
export interface StreamedInitializer {
  name: string;
  elemType: FixedElemType;
  dims: number[];
  /**
   * Fills `chunk` with the payload bytes starting at byte `offset`. `chunk.byteOffset` is 0 and its length is
   * a multiple of the element size, so a typed-array view over it is always valid. Called in order.
   */
  fill: (chunk: Buffer, offset: number) => void;
}
export interface WriteModelOptions {
  /** Appended as the graph's last initializer, never held in memory whole. */
  bigInitializer?: StreamedInitializer;
  /** Payload bytes per write; default 4 MiB. */
  chunkBytes?: number;
}

async function writeAll(fh: Awaited<ReturnType<typeof open>>, buf: Uint8Array): Promise<void> {
  for (let done = 0; done < buf.byteLength; ) done += (await fh.write(buf, done)).bytesWritten;
}

/**
 * Writes a model to `path` and returns the file size. With `bigInitializer`, memory stays at one chunk
 * whatever the payload size: protobuf's length prefixes are computed up front from the known payload size,
 * the headers written, then the payload streamed. (Protobuf, hence onnxruntime, caps a model at 2 GiB.)
 */
export async function writeModelFile(
  path: string,
  model: ModelSpec,
  options: WriteModelOptions = {},
): Promise<number> {
  const big = options.bigInitializer;
  const fh = await open(path, 'w');
  try {
    if (big === undefined) {
      const bytes = encodeModel(model);
      await writeAll(fh, bytes);
      return bytes.byteLength;
    }
    const size = ELEM_SIZES[big.elemType];
    const payload = elementCount(big.dims) * size;
    const tensor = tensorHead(big.name, big.elemType, big.dims).header(9, payload);
    const tensorLength = tensor.length + payload;
    const graph = encodeGraph(model.graph);
    const graphLength = graph.length + lenHeaderLength(5, tensorLength) + tensorLength;
    const head = encodeModelHead(model)
      .header(7, graphLength)
      .append(graph)
      .header(5, tensorLength)
      .append(tensor);
    await writeAll(fh, head.finish());
    const chunkBytes = Math.max(size, Math.floor((options.chunkBytes ?? 4 << 20) / 8) * 8);
    const chunk = Buffer.alloc(Math.min(chunkBytes, payload));
    for (let offset = 0; offset < payload; offset += chunk.length) {
      const view = chunk.subarray(0, Math.min(chunk.length, payload - offset));
      big.fill(view, offset);
      await writeAll(fh, view);
    }
    return head.length + payload;
  } finally {
    await fh.close();
  }
}
