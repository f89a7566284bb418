import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { OnnxModelError } from '../../lib/errors.ts';
import { inspectOnnx } from '../../lib/onnx/inspect.ts';
import {
  externalTensor,
  graph,
  identityGraph,
  lfield,
  model,
  node,
  valueInfo,
  vfield,
} from '../helpers/raw-proto.ts';

const inspect = (bytes: Buffer) => inspectOnnx(Readable.from([bytes]), 'm.onnx');

describe('inspectOnnx refuses hand-made hostile models', () => {
  it('a graph field given twice (protobuf would merge them; onnxruntime would run both)', async () => {
    await expect(inspect(model([identityGraph('x', 'y'), identityGraph('z', 'w')]))).rejects.toThrow(
      /ModelProto.graph appears more than once/,
    );
  });

  it('a shape given twice for one input', async () => {
    const tensorType = Buffer.concat([
      vfield(1, 1),
      lfield(2, lfield(1, vfield(1, 3))),
      lfield(2, lfield(1, vfield(1, 4))),
    ]);
    const input = Buffer.concat([lfield(1, 'x'), lfield(2, lfield(1, tensorType))]);
    const g = graph({
      nodes: [node('Identity', ['x'], ['y'])],
      inputs: [input],
      outputs: [valueInfo('y', 1, [3, 4])],
    });
    await expect(inspect(model([g]))).rejects.toThrow(/TypeProto.Tensor.shape appears more than once/);
  });

  it('an input that declares a tensor and a sequence type', async () => {
    const type = Buffer.concat([
      lfield(1, Buffer.concat([vfield(1, 1), lfield(2, lfield(1, vfield(1, 2)))])),
      lfield(4, Buffer.alloc(0)),
    ]);
    const input = Buffer.concat([lfield(1, 'x'), lfield(2, type)]);
    const g = graph({
      nodes: [node('Identity', ['x'], ['y'])],
      inputs: [input],
      outputs: [valueInfo('y', 1, [2])],
    });
    await expect(inspect(model([g]))).rejects.toThrow(/declares more than one type/);
  });

  it('a negative dimension (an int64 -1 on the wire)', async () => {
    const g = graph({
      nodes: [node('Identity', ['x'], ['y'])],
      inputs: [valueInfo('x', 1, [-1])],
      outputs: [valueInfo('y', 1, [2])],
    });
    await expect(inspect(model([g]))).rejects.toThrow(/input "x" has an invalid dimension/);
  });

  it('millions of tiny initializers: refused at a bound, not after the heap has grown with them', async () => {
    const empty = lfield(5, Buffer.alloc(0)); // an empty TensorProto as a main-graph initializer
    const g = Buffer.concat([identityGraph(), Buffer.concat(Array.from({ length: 250_000 }, () => empty))]);
    await expect(inspect(model([g]))).rejects.toThrow(/initializer has more than 200000 entries/);
  });

  it('an input with thousands of dimensions', async () => {
    const g = graph({
      nodes: [node('Identity', ['x'], ['y'])],
      inputs: [valueInfo('x', 1, Array(100).fill(1))],
      outputs: [valueInfo('y', 1, [2])],
    });
    await expect(inspect(model([g]))).rejects.toThrow(/dim has more than 64 entries/);
  });

  it('external data in a training graph (ModelProto.training_info)', async () => {
    const training = lfield(20, lfield(1, graph({ extra: [lfield(5, externalTensor('w'))] })));
    await expect(inspect(model([identityGraph()], [training]))).rejects.toThrow(
      /tensor "w" stores its data in an external file/,
    );
  });

  it('external data in a function attribute (FunctionProto.attribute_proto)', async () => {
    const attribute = Buffer.concat([lfield(1, 'value'), lfield(5, externalTensor('k'))]);
    const fn = lfield(25, Buffer.concat([lfield(1, 'f'), lfield(11, attribute)]));
    await expect(inspect(model([identityGraph()], [fn]))).rejects.toThrow(OnnxModelError);
  });

  it('many nodes are fine: nodes are checked, not kept', async () => {
    const nodes = Array.from({ length: 50_000 }, (_, i) => node('Identity', [`t${i}`], [`t${i + 1}`]));
    const g = graph({ nodes, inputs: [valueInfo('t0', 1, [2])], outputs: [valueInfo('t50000', 1, [2])] });
    const info = await inspect(model([g]));
    expect(info.inputs).toEqual([{ name: 't0', datatype: 'FP32', shape: [2] }]);
  });
});
