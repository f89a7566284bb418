import type { TensorSpec } from '../../lib/package/manifest.ts';
import type { VerifiedPackage } from '../../lib/package/verify.ts';

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

const tensor = (t: TensorSpec) =>
  `${t.name}  ${t.datatype}[${t.shape.map((d) => (d === -1 ? '?' : d)).join(', ')}]`;

/** Prints a verified package's manifest for a person. */
export function printManifest(v: VerifiedPackage): void {
  const m = v.manifest;
  const lines = [
    `${m.name}@${m.version}  (${formatBytes(v.bytes)}, created ${m.createdAt})`,
    `  id        ${v.id}`,
    `  integrity ok, ${v.signedBy ? `signed by ${v.signedBy}` : v.signed ? 'signature present, not checked (maap verify --trusted-key)' : 'unsigned'}`,
    `  model     ${m.model.path}  ${formatBytes(m.model.bytes)}  sha256 ${m.model.sha256.slice(0, 16)}…  opset ${m.model.opset}  ir ${m.model.irVersion}${m.model.producer ? `  by ${m.model.producer}` : ''}`,
    `  requires  onnxruntime ${m.requires.onnxruntime}, opset ${m.requires.opset}${m.requires.memoryMb ? `, ${m.requires.memoryMb} MB` : ''}`,
    '  inputs',
    ...m.signature.inputs.map((t) => `    ${tensor(t)}`),
    '  outputs',
    ...m.signature.outputs.map((t) => `    ${tensor(t)}`),
  ];
  if (m.files.length) lines.push('  files', ...m.files.map((f) => `    ${f.path}  ${formatBytes(f.bytes)}`));
  if (m.labels) lines.push(`  labels    ${m.labels.join(', ')}`);
  const metrics = Object.entries(m.metrics);
  if (metrics.length) lines.push(`  metrics   ${metrics.map(([k, n]) => `${k}=${n}`).join('  ')}`);
  if (m.example)
    lines.push(
      `  example   ${m.example.request.inputs.length} input(s), ${m.example.outputs.length} expected output(s)`,
    );
  const lineage = Object.entries(m.lineage).filter(([, val]) => val !== undefined);
  if (lineage.length)
    lines.push(
      '  lineage',
      ...lineage.map(([k, val]) => `    ${k}: ${typeof val === 'string' ? val : JSON.stringify(val)}`),
    );
  console.log(lines.join('\n'));
}
