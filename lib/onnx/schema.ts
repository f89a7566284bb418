import type { DecodedMessage, FieldSpec, MessageSpec } from './proto-stream.ts';

/**
 * The slice of onnx.proto that maap reads: the graph's inputs and outputs with their types, the opset
 * imports, the producer, and every TensorProto's storage location (to refuse external data). Field numbers
 * are onnx.proto's. Weights (raw_data, float_data, ...) are never named here, so the decoder skips them.
 */

/** Thrown by the schema hooks; the inspector turns it into an OnnxModelError. */
export class ExternalDataError extends Error {}

const TENSOR_DATA_LOCATION_EXTERNAL = 1;

const tensor: MessageSpec = {
  name: 'TensorProto',
  fields: {
    8: { name: 'name', kind: 'string' },
    13: { name: 'externalData', kind: 'presence' },
    14: { name: 'dataLocation', kind: 'varint' },
  },
  onEnd(value: DecodedMessage) {
    if (value.externalData === true || value.dataLocation === TENSOR_DATA_LOCATION_EXTERNAL) {
      throw new ExternalDataError(typeof value.name === 'string' && value.name ? value.name : '(unnamed)');
    }
  },
};

const sparseTensor: MessageSpec = {
  name: 'SparseTensorProto',
  fields: {
    1: { name: 'values', kind: 'message', type: () => tensor },
    2: { name: 'indices', kind: 'message', type: () => tensor },
  },
};

const dimension: MessageSpec = {
  name: 'TensorShapeProto.Dimension',
  fields: { 1: { name: 'dimValue', kind: 'varint' }, 2: { name: 'dimParam', kind: 'string' } },
};

const shape: MessageSpec = {
  name: 'TensorShapeProto',
  fields: { 1: { name: 'dim', kind: 'message', type: () => dimension, repeated: true } },
};

const tensorType: MessageSpec = {
  name: 'TypeProto.Tensor',
  fields: {
    1: { name: 'elemType', kind: 'varint' },
    2: { name: 'shape', kind: 'message', type: () => shape },
  },
};

const typeProto: MessageSpec = {
  name: 'TypeProto',
  fields: {
    1: { name: 'tensor', kind: 'message', type: () => tensorType },
    4: { name: 'sequence', kind: 'presence' },
    5: { name: 'map', kind: 'presence' },
    8: { name: 'sparseTensor', kind: 'presence' },
    9: { name: 'optional', kind: 'presence' },
  },
};

const valueInfo: MessageSpec = {
  name: 'ValueInfoProto',
  fields: {
    1: { name: 'name', kind: 'string' },
    2: { name: 'type', kind: 'message', type: () => typeProto },
  },
};

const attribute: MessageSpec = {
  name: 'AttributeProto',
  fields: {
    5: { name: 't', kind: 'message', type: () => tensor },
    6: { name: 'g', kind: 'message', type: () => graph },
    10: { name: 'tensors', kind: 'message', type: () => tensor, repeated: true },
    11: { name: 'graphs', kind: 'message', type: () => graph, repeated: true },
    22: { name: 'sparseTensor', kind: 'message', type: () => sparseTensor },
    23: { name: 'sparseTensors', kind: 'message', type: () => sparseTensor, repeated: true },
  },
};

// Nodes are descended only to reach tensors and subgraphs inside attributes; nothing of them is kept.
const node: MessageSpec = {
  name: 'NodeProto',
  fields: { 5: { name: 'attribute', kind: 'message', type: () => attribute } },
};

const ioFields: Record<number, FieldSpec> = {
  11: { name: 'input', kind: 'message', type: () => valueInfo, repeated: true },
  12: { name: 'output', kind: 'message', type: () => valueInfo, repeated: true },
};

const graph: MessageSpec = {
  name: 'GraphProto',
  fields: {
    1: { name: 'node', kind: 'message', type: () => node },
    5: { name: 'initializer', kind: 'message', type: () => tensor },
    15: { name: 'sparseInitializer', kind: 'message', type: () => sparseTensor },
    ...ioFields,
  },
  onEnd(value: DecodedMessage, depth: number) {
    // Keep initializer names only for the main graph (depth 1 under the model); a subgraph keeps nothing.
    if (depth > 1) {
      for (const key of Object.keys(value)) delete value[key];
    }
  },
};

// Initializer names are needed to tell real inputs from IR<4 initializer-inputs: collect them on the side.
const mainGraphInitializerNames: MessageSpec = {
  ...graph,
  fields: {
    ...graph.fields,
    5: { name: 'initializer', kind: 'message', type: () => namedTensor, repeated: true },
  },
};

const namedTensor: MessageSpec = {
  ...tensor,
  onEnd(value: DecodedMessage, depth: number) {
    tensor.onEnd?.(value, depth);
    for (const key of Object.keys(value)) if (key !== 'name') delete value[key];
  },
};

const opsetId: MessageSpec = {
  name: 'OperatorSetIdProto',
  fields: { 1: { name: 'domain', kind: 'string' }, 2: { name: 'version', kind: 'varint' } },
};

const functionProto: MessageSpec = {
  name: 'FunctionProto',
  fields: { 7: { name: 'node', kind: 'message', type: () => node } },
};

export const modelSpec: MessageSpec = {
  name: 'ModelProto',
  fields: {
    1: { name: 'irVersion', kind: 'varint' },
    2: { name: 'producerName', kind: 'string' },
    3: { name: 'producerVersion', kind: 'string' },
    7: { name: 'graph', kind: 'message', type: () => mainGraphInitializerNames },
    8: { name: 'opsetImport', kind: 'message', type: () => opsetId, repeated: true },
    25: { name: 'functions', kind: 'message', type: () => functionProto },
  },
};
