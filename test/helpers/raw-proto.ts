/**
 * Hand-made protobuf bytes for hostile-input tests: what no well-behaved writer (maap's builder included)
 * would produce — repeated singular fields, negative dimensions, millions of tiny messages.
 */
export function varint(n: number | bigint): Buffer {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}
const tag = (field: number, wire: number) => varint(field * 8 + wire);
/** A varint field. */
export const vfield = (field: number, n: number | bigint) => Buffer.concat([tag(field, 0), varint(n)]);
/** A length-delimited field. */
export const lfield = (field: number, body: Buffer | string) => {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([tag(field, 2), varint(b.length), b]);
};
/** ValueInfoProto { name, type { tensor_type { elem_type, shape { dim* } } } }. */
export function valueInfo(name: string, elem: number, dims: (number | string)[]): Buffer {
  const dimBytes = Buffer.concat(
    dims.map((d) => lfield(1, typeof d === 'number' ? vfield(1, d) : lfield(2, d))),
  );
  return Buffer.concat([
    lfield(1, name),
    lfield(2, lfield(1, Buffer.concat([vfield(1, elem), lfield(2, dimBytes)]))),
  ]);
}
export function node(op: string, inputs: string[], outputs: string[]): Buffer {
  return Buffer.concat([
    ...inputs.map((i) => lfield(1, i)),
    ...outputs.map((o) => lfield(2, o)),
    lfield(4, op),
  ]);
}
export function graph(parts: {
  nodes?: Buffer[];
  inputs?: Buffer[];
  outputs?: Buffer[];
  extra?: Buffer[];
}): Buffer {
  return Buffer.concat([
    ...(parts.nodes ?? []).map((n) => lfield(1, n)),
    lfield(2, 'g'),
    ...(parts.inputs ?? []).map((v) => lfield(11, v)),
    ...(parts.outputs ?? []).map((v) => lfield(12, v)),
    ...(parts.extra ?? []),
  ]);
}
/** ModelProto with the given graph fields (several = a repeated singular field), opset 17. */
export function model(graphs: Buffer[], extra: Buffer[] = []): Buffer {
  return Buffer.concat([
    vfield(1, 8),
    lfield(2, 'hand'),
    ...graphs.map((g) => lfield(7, g)),
    lfield(8, vfield(2, 17)),
    ...extra,
  ]);
}
/** An identity graph x → y, FP32 [2]. */
export const identityGraph = (input = 'x', output = 'y') =>
  graph({
    nodes: [node('Identity', [input], [output])],
    inputs: [valueInfo(input, 1, [2])],
    outputs: [valueInfo(output, 1, [2])],
  });
/** A TensorProto whose data lives in an external file. */
export const externalTensor = (name: string) =>
  Buffer.concat([
    vfield(1, 4),
    vfield(2, 1),
    lfield(8, name),
    lfield(13, Buffer.concat([lfield(1, 'location'), lfield(2, 'w.bin')])),
    vfield(14, 1),
  ]);
