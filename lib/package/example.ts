import { UsageError } from '../errors.ts';
import type { Example, TensorSpec } from './manifest.ts';

type Tensor = Example['outputs'][number];

/**
 * Checks a manifest's smoke test against the model signature at pack time, so that a package never carries
 * an example its own model cannot answer: every input named once, datatypes and fixed dimensions as the
 * graph declares them, data counts matching shapes, expected outputs naming real outputs.
 */
export function checkExample(
  example: Example,
  signature: { inputs: TensorSpec[]; outputs: TensorSpec[] },
): void {
  const inputs = new Map(signature.inputs.map((s) => [s.name, s]));
  const given = new Set<string>();
  for (const tensor of example.request.inputs) {
    const spec = inputs.get(tensor.name);
    if (!spec)
      throw new UsageError(
        `example: input "${tensor.name}" is not an input of the model (inputs: ${[...inputs.keys()].join(', ')})`,
      );
    if (given.has(tensor.name)) throw new UsageError(`example: input "${tensor.name}" is given twice`);
    given.add(tensor.name);
    checkTensor(tensor, spec, 'input');
  }
  const missing = [...inputs.keys()].filter((n) => !given.has(n));
  if (missing.length) throw new UsageError(`example: the request lacks input(s) ${missing.join(', ')}`);
  const outputs = new Map(signature.outputs.map((s) => [s.name, s]));
  for (const tensor of example.outputs) {
    const spec = outputs.get(tensor.name);
    if (!spec)
      throw new UsageError(
        `example: output "${tensor.name}" is not an output of the model (outputs: ${[...outputs.keys()].join(', ')})`,
      );
    checkTensor(tensor, spec, 'output');
  }
}

function checkTensor(tensor: Tensor, spec: TensorSpec, role: string): void {
  const where = `example: ${role} "${tensor.name}"`;
  if (tensor.datatype !== spec.datatype)
    throw new UsageError(`${where} is ${tensor.datatype} but the model declares ${spec.datatype}`);
  if (tensor.shape.length !== spec.shape.length) {
    throw new UsageError(
      `${where} has rank ${tensor.shape.length} but the model declares shape [${spec.shape.join(', ')}]`,
    );
  }
  for (const [i, dim] of spec.shape.entries()) {
    if (dim !== -1 && tensor.shape[i] !== dim) {
      throw new UsageError(
        `${where} has shape [${tensor.shape.join(', ')}] but the model declares [${spec.shape.join(', ')}]`,
      );
    }
  }
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  const flat = (tensor.data as unknown[]).flat(Number.POSITIVE_INFINITY);
  if (flat.length !== count)
    throw new UsageError(
      `${where}: shape [${tensor.shape.join(', ')}] holds ${count} values but data has ${flat.length}`,
    );
}
