/**
 * The oldest onnxruntime release that implements each default-domain opset, from onnxruntime's published
 * compatibility table. Used for a package's default `requires.onnxruntime` range.
 */
const MIN_RUNTIME_FOR_OPSET: ReadonlyArray<readonly [opset: number, runtime: string]> = [
  [15, '1.10.0'],
  [16, '1.11.0'],
  [17, '1.12.0'],
  [18, '1.14.0'],
  [19, '1.15.0'],
  [20, '1.17.0'],
  [21, '1.18.0'],
  [22, '1.20.0'],
  [23, '1.22.0'],
];

/** A semver range of onnxruntime versions able to run a model of this opset. */
export function defaultRuntimeRange(opset: number): string {
  for (const [max, runtime] of MIN_RUNTIME_FOR_OPSET) if (opset <= max) return `>=${runtime}`;
  const [, newest] = MIN_RUNTIME_FOR_OPSET[MIN_RUNTIME_FOR_OPSET.length - 1] as readonly [number, string];
  return `>${newest}`;
}
