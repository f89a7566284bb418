import type { DecodedMessage, MessageSpec } from './proto-stream.ts';

/**
 * The slice of onnx.proto that maap reads: the main graph's inputs and outputs with their types, initializer
 * names, the opset imports, the producer, and every TensorProto's storage location (to refuse external data,
 * wherever the tensor sits: initializers, sparse initializers, Constant attributes, subgraphs, functions,
 * training graphs). Field numbers are onnx.proto's. Weights (raw_data, float_data, ...) are never named, so
 * the decoder skips them; nodes, attributes and subgraphs are decoded for their checks and not kept.
 */

/** Thrown by the schema hooks; the inspector turns it into an OnnxModelError. */
export class ExternalDataError extends Error {}

const TENSOR_DATA_LOCATION_EXTERNAL = 1;

function refuseExternal(value: DecodedMessage): void {
  if (value.externalData === true || value.dataLocation === TENSOR_DATA_LOCATION_EXTERNAL) {
    throw new ExternalDataError(typeof value.name === 'string' && value.name ? value.name : '(unnamed)');
  }
}

const tensor: MessageSpec = {
  name: 'TensorProto',
  fields: {
    8: { name: 'name', kind: 'string' },
    13: { name: 'externalData', kind: 'presence' },
    14: { name: 'dataLocation', kind: 'varint' },
  },
  onEnd: refuseExternal,
};

const sparseTensor: MessageSpec = {
  name: 'SparseTensorProto',
  fields: {
    1: { name: 'values', kind: 'message', type: () => tensor, retain: false },
    2: { name: 'indices', kind: 'message', type: () => tensor, retain: false },
  },
};

const dimension: MessageSpec = {
  name: 'TensorShapeProto.Dimension',
  fields: { 1: { name: 'dimValue', kind: 'varint' }, 2: { name: 'dimParam', kind: 'string' } },
};

const shape: MessageSpec = {
  name: 'TensorShapeProto',
  fields: { 1: { name: 'dim', kind: 'message', type: () => dimension, repeated: true, maxItems: 64 } },
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
    5: { name: 't', kind: 'message', type: () => tensor, retain: false },
    6: { name: 'g', kind: 'message', type: () => subgraph, retain: false },
    10: { name: 'tensors', kind: 'message', type: () => tensor, repeated: true, retain: false },
    11: { name: 'graphs', kind: 'message', type: () => subgraph, repeated: true, retain: false },
    22: { name: 'sparseTensor', kind: 'message', type: () => sparseTensor, retain: false },
    23: { name: 'sparseTensors', kind: 'message', type: () => sparseTensor, repeated: true, retain: false },
  },
};

const node: MessageSpec = {
  name: 'NodeProto',
  fields: { 5: { name: 'attribute', kind: 'message', type: () => attribute, repeated: true, retain: false } },
};

/** What every graph is walked for: tensors (external data) and nodes (their attributes). */
const graphFields = {
  1: { name: 'node', kind: 'message', type: () => node, repeated: true, retain: false },
  5: { name: 'initializer', kind: 'message', type: () => tensor, repeated: true, retain: false },
  15: { name: 'sparseInitializer', kind: 'message', type: () => sparseTensor, repeated: true, retain: false },
} as const;

/** A subgraph (If/Loop/Scan bodies, training graphs): checked, nothing kept. */
const subgraph: MessageSpec = { name: 'GraphProto', fields: graphFields };

/** The tensor of a main-graph initializer: only its name is kept, to tell real inputs from IR<4 ones. */
const namedTensor: MessageSpec = {
  ...tensor,
  onEnd(value: DecodedMessage) {
    refuseExternal(value);
    for (const key of Object.keys(value)) if (key !== 'name') delete value[key];
  },
};

/** The main graph: its inputs, outputs and initializer names are kept. */
const mainGraph: MessageSpec = {
  name: 'GraphProto',
  fields: {
    ...graphFields,
    5: { name: 'initializer', kind: 'message', type: () => namedTensor, repeated: true, maxItems: 200_000 },
    11: { name: 'input', kind: 'message', type: () => valueInfo, repeated: true },
    12: { name: 'output', kind: 'message', type: () => valueInfo, repeated: true },
  },
};

const opsetId: MessageSpec = {
  name: 'OperatorSetIdProto',
  fields: { 1: { name: 'domain', kind: 'string' }, 2: { name: 'version', kind: 'varint' } },
};

const functionProto: MessageSpec = {
  name: 'FunctionProto',
  fields: {
    7: { name: 'node', kind: 'message', type: () => node, repeated: true, retain: false },
    11: { name: 'attributeProto', kind: 'message', type: () => attribute, repeated: true, retain: false },
  },
};

const trainingInfo: MessageSpec = {
  name: 'TrainingInfoProto',
  fields: {
    1: { name: 'initialization', kind: 'message', type: () => subgraph, retain: false },
    2: { name: 'algorithm', kind: 'message', type: () => subgraph, retain: false },
  },
};

export const modelSpec: MessageSpec = {
  name: 'ModelProto',
  fields: {
    1: { name: 'irVersion', kind: 'varint' },
    2: { name: 'producerName', kind: 'string' },
    3: { name: 'producerVersion', kind: 'string' },
    7: { name: 'graph', kind: 'message', type: () => mainGraph },
    8: { name: 'opsetImport', kind: 'message', type: () => opsetId, repeated: true, maxItems: 1000 },
    20: { name: 'trainingInfo', kind: 'message', type: () => trainingInfo, repeated: true, retain: false },
    25: { name: 'functions', kind: 'message', type: () => functionProto, repeated: true, retain: false },
  },
};
