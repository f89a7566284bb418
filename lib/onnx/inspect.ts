import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { OnnxModelError } from '../errors.ts';
import type { Datatype, TensorSpec } from '../package/manifest.ts';
import { type DecodedMessage, ProtoFormatError, ProtoStreamDecoder } from './proto-stream.ts';
import { ExternalDataError, modelSpec } from './schema.ts';

/** What maap reads from an ONNX file: enough to write a manifest and to check runtime requirements. */
export interface OnnxInfo {
  readonly irVersion: number;
  /** Version of the default (ai.onnx) operator set. */
  readonly opset: number;
  /** Versions of any other operator-set domains the model imports (ai.onnx.ml, com.microsoft, ...). */
  readonly domains: Record<string, number>;
  /** "name version" of the tool that wrote the file. */
  readonly producer: string;
  readonly inputs: TensorSpec[];
  readonly outputs: TensorSpec[];
  readonly sha256: string;
  readonly bytes: number;
}

/** Largest dimension accepted (2^31 - 1): anything larger is a negative int64 or an absurd tensor. */
const MAX_DIM = 2 ** 31 - 1;

/** ONNX TensorProto.DataType → Open Inference Protocol datatype. */
const ELEM_TYPES: Record<number, Datatype> = {
  1: 'FP32',
  2: 'UINT8',
  3: 'INT8',
  4: 'UINT16',
  5: 'INT16',
  6: 'INT32',
  7: 'INT64',
  8: 'BYTES',
  9: 'BOOL',
  10: 'FP16',
  11: 'FP64',
  12: 'UINT32',
  13: 'UINT64',
  16: 'BF16',
};

/**
 * Streams an ONNX model through a hash and a flat-memory decoder. `feed` it chunks, then `finish()`.
 * Refuses malformed protobuf, external-data tensors, non-tensor inputs/outputs and unknown element types.
 */
export class OnnxInspector {
  private readonly decoder = new ProtoStreamDecoder(modelSpec);
  private readonly hash;
  private bytes = 0;

  /** `hash: false` when the caller hashes the same bytes itself (the package reader): `sha256` is then ''. */
  constructor(
    private readonly label = 'model.onnx',
    options: { hash?: boolean } = {},
  ) {
    this.hash = options.hash === false ? undefined : createHash('sha256');
  }

  feed(chunk: Uint8Array): void {
    this.hash?.update(chunk);
    this.bytes += chunk.length;
    try {
      this.decoder.write(chunk);
    } catch (err) {
      throw this.wrap(err);
    }
  }

  finish(): OnnxInfo {
    let model: DecodedMessage;
    try {
      model = this.decoder.end();
    } catch (err) {
      throw this.wrap(err);
    }
    return { ...describeModel(model, this.label), sha256: this.hash?.digest('hex') ?? '', bytes: this.bytes };
  }

  private wrap(err: unknown): Error {
    if (err instanceof ExternalDataError) {
      return new OnnxModelError(
        `${this.label}: tensor "${err.message}" stores its data in an external file; maap packages must be self-contained ` +
          '(save the model with all tensors inside the .onnx file, e.g. onnx.save_model(m, path, save_as_external_data=False))',
      );
    }
    if (err instanceof ProtoFormatError)
      return new OnnxModelError(`${this.label} is not a valid ONNX model: ${err.message}`);
    return err as Error;
  }
}

/** Inspects an ONNX file (path) or stream in one pass. */
export async function inspectOnnx(source: string | Readable, label?: string): Promise<OnnxInfo> {
  const stream = typeof source === 'string' ? createReadStream(source, { highWaterMark: 1 << 20 }) : source;
  const inspector = new OnnxInspector(label ?? (typeof source === 'string' ? source : 'model.onnx'));
  for await (const chunk of stream) inspector.feed(chunk as Buffer);
  return inspector.finish();
}

function describeModel(model: DecodedMessage, label: string): Omit<OnnxInfo, 'sha256' | 'bytes'> {
  const graph = model.graph as DecodedMessage | undefined;
  if (typeof model.irVersion !== 'number' || !graph) {
    throw new OnnxModelError(`${label} is not a valid ONNX model: it has no ir_version or no graph`);
  }
  const domains: Record<string, number> = {};
  let opset: number | undefined;
  for (const entry of (model.opsetImport as DecodedMessage[] | undefined) ?? []) {
    const domain = typeof entry.domain === 'string' ? entry.domain : '';
    const version = typeof entry.version === 'number' ? entry.version : 0;
    if (domain === '' || domain === 'ai.onnx') opset = version;
    else domains[domain] = version;
  }
  if (!opset) throw new OnnxModelError(`${label} imports no version of the default (ai.onnx) operator set`);
  const initializers = new Set(
    ((graph.initializer as DecodedMessage[] | undefined) ?? [])
      .map((t) => t.name)
      .filter((n) => typeof n === 'string'),
  );
  const inputs = ((graph.input as DecodedMessage[] | undefined) ?? [])
    .filter((v) => !initializers.has(v.name as string))
    .map((v) => tensorSpec(v, 'input', label));
  const outputs = ((graph.output as DecodedMessage[] | undefined) ?? []).map((v) =>
    tensorSpec(v, 'output', label),
  );
  if (inputs.length === 0)
    throw new OnnxModelError(`${label}: the graph has no inputs; maap serves models that take input`);
  if (outputs.length === 0) throw new OnnxModelError(`${label}: the graph has no outputs`);
  const producer = [model.producerName, model.producerVersion]
    .filter((s) => typeof s === 'string' && s)
    .join(' ');
  return { irVersion: model.irVersion, opset, domains, producer, inputs, outputs };
}

function tensorSpec(value: DecodedMessage, role: 'input' | 'output', label: string): TensorSpec {
  const name = value.name;
  if (typeof name !== 'string' || name === '')
    throw new OnnxModelError(`${label}: a graph ${role} has no name`);
  const type = value.type as DecodedMessage | undefined;
  if (type && Object.keys(type).length > 1) {
    throw new OnnxModelError(
      `${label}: ${role} "${name}" declares more than one type (${Object.keys(type).join(', ')})`,
    );
  }
  const tensor = type?.tensor as DecodedMessage | undefined;
  if (!tensor) {
    const kind = type ? (Object.keys(type)[0] ?? 'unknown') : 'untyped';
    throw new OnnxModelError(
      `${label}: ${role} "${name}" is a ${kind} value, not a tensor; maap serves tensor inputs and outputs only ` +
        '(for scikit-learn classifiers convert with options={"zipmap": False})',
    );
  }
  const datatype = ELEM_TYPES[tensor.elemType as number];
  if (!datatype) {
    throw new OnnxModelError(
      `${label}: ${role} "${name}" has ONNX element type ${String(tensor.elemType)}, which maap does not serve`,
    );
  }
  const dims = ((tensor.shape as DecodedMessage | undefined)?.dim as DecodedMessage[] | undefined) ?? [];
  // A missing shape means "any rank": recorded as a single dynamic dimension would be wrong, so refuse it.
  if (!tensor.shape)
    throw new OnnxModelError(`${label}: ${role} "${name}" has no shape; export the model with shapes`);
  const shape = dims.map((d) => {
    if (typeof d.dimValue !== 'number') return -1;
    // dim_value is an int64: a negative one arrives as a huge unsigned varint.
    if (d.dimValue > MAX_DIM)
      throw new OnnxModelError(`${label}: ${role} "${name}" has an invalid dimension ${d.dimValue}`);
    return d.dimValue;
  });
  return { name, datatype, shape };
}
