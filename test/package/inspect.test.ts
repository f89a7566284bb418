import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { OnnxModelError } from '../../lib/errors.ts';
import { inspectOnnx } from '../../lib/onnx/inspect.ts';
import { DATATYPES } from '../../lib/package/manifest.ts';
import {
  externalConstantModel,
  externalDataModel,
  gatherModel,
  identityModel,
  initializerAsInputModel,
  mapInputModel,
  mlpModel,
  multiIoModel,
  opsetModel,
  sequenceOutputModel,
} from '../fixtures/models.ts';

/** Feeds bytes in chunks of the given size, to exercise every chunk boundary of the streaming decoder. */
function chunked(bytes: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

describe('inspectOnnx reads the signature from the graph', () => {
  it.each(DATATYPES)('identity model of %s', async (datatype) => {
    const fixture = identityModel(datatype);
    const info = await inspectOnnx(chunked(fixture.bytes, 4096));
    expect({ inputs: info.inputs, outputs: info.outputs }).toEqual(fixture.expected);
    expect(info.bytes).toBe(fixture.bytes.length);
  });

  it('several inputs and outputs of different datatypes, one byte at a time', async () => {
    const fixture = multiIoModel();
    const info = await inspectOnnx(chunked(fixture.bytes, 1));
    expect({ inputs: info.inputs, outputs: info.outputs }).toEqual(fixture.expected);
  });

  it('fixed and symbolic dimensions; opset, IR version and producer', async () => {
    const fixture = mlpModel();
    const info = await inspectOnnx(chunked(fixture.bytes, 7));
    expect(info.inputs).toEqual(fixture.expected.inputs);
    expect(info.opset).toBe(17);
    expect(info.irVersion).toBe(8);
    expect(info.producer).toBe('maap-fixtures 1.0.0');
  });

  it('skips weights: the SHA-256 and size cover every byte', async () => {
    const fixture = gatherModel(1000, 16);
    const info = await inspectOnnx(chunked(fixture.bytes, 1000));
    const { createHash } = await import('node:crypto');
    expect(info.sha256).toBe(createHash('sha256').update(fixture.bytes).digest('hex'));
    expect(info.inputs).toEqual(fixture.expected.inputs);
  });

  it('an initializer listed as a graph input (IR 3) is not an input', async () => {
    const fixture = initializerAsInputModel();
    const info = await inspectOnnx(chunked(fixture.bytes, 64));
    expect(info.inputs).toEqual(fixture.expected.inputs);
  });

  it('records other operator-set domains', async () => {
    const fixture = opsetModel({ '': 17, 'ai.onnx.ml': 3 });
    const info = await inspectOnnx(chunked(fixture.bytes, 64));
    expect(info.opset).toBe(17);
    expect(info.domains).toEqual({ 'ai.onnx.ml': 3 });
  });
});

describe('inspectOnnx refuses', () => {
  it('an initializer stored as external data, naming the tensor', async () => {
    const fixture = externalDataModel();
    await expect(inspectOnnx(chunked(fixture.bytes, 100))).rejects.toThrow(OnnxModelError);
    await expect(inspectOnnx(chunked(fixture.bytes, 100))).rejects.toThrow(`"${fixture.refuse.value}"`);
  });

  it('a Constant inside a subgraph whose tensor is external data', async () => {
    const fixture = externalConstantModel({ nested: true });
    await expect(inspectOnnx(chunked(fixture.bytes, 3))).rejects.toThrow(/external file/);
  });

  it('a model that imports no default-domain opset, saying so', async () => {
    await expect(inspectOnnx(chunked(opsetModel({ 'ai.onnx.ml': 3 }).bytes, 64))).rejects.toThrow(
      /default \(ai.onnx\) operator set/,
    );
  });

  it('a sequence output, with a hint for scikit-learn', async () => {
    await expect(inspectOnnx(chunked(sequenceOutputModel().bytes, 50))).rejects.toThrow(
      /not a tensor.*zipmap/,
    );
  });

  it('a map input', async () => {
    await expect(inspectOnnx(chunked(mapInputModel().bytes, 50))).rejects.toThrow(OnnxModelError);
  });

  it('a truncated model', async () => {
    const { bytes } = mlpModel();
    for (const cut of [1, 10, Math.floor(bytes.length / 2), bytes.length - 1]) {
      await expect(inspectOnnx(chunked(bytes.subarray(0, cut), 16))).rejects.toThrow(OnnxModelError);
    }
  });

  it('bytes that are not protobuf at all', async () => {
    await expect(inspectOnnx(Readable.from([Buffer.from('{"this": "is json, not onnx"}')]))).rejects.toThrow(
      /not a valid ONNX model/,
    );
  });

  it('an empty file', async () => {
    await expect(inspectOnnx(Readable.from([Buffer.alloc(0)]))).rejects.toThrow(/no ir_version or no graph/);
  });

  it('a length prefix that overruns its parent message', async () => {
    const bytes = Buffer.from(mlpModel().bytes);
    // field 7 (graph), wire type 2, then a huge length: 0x3a = (7 << 3) | 2
    const hostile = Buffer.concat([
      Buffer.from([0x08, 0x08, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
      bytes.subarray(0, 100),
    ]);
    await expect(inspectOnnx(Readable.from([hostile]))).rejects.toThrow(OnnxModelError);
  });
});
