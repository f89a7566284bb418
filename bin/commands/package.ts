import { type Command, InvalidArgumentError } from 'commander';
import { packModel } from '../../lib/package/pack.ts';
import { generateKeyFiles } from '../../lib/package/sign.ts';
import { signPackage } from '../../lib/package/sign-package.ts';
import { type VerifiedPackage, verifyPackage } from '../../lib/package/verify.ts';
import { createProgress } from '../progress.ts';
import { formatBytes, printManifest } from './format.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerPackageCommands(program: Command): void {
  program
    .command('pack')
    .description('pack an ONNX model into <name>-<version>.maap')
    .argument('<model.onnx>', 'the model file')
    .requiredOption('--name <name>', 'model name: lowercase letters, digits, dashes')
    .requiredOption('--version <semver>', 'package version, e.g. 1.4.0')
    .option('--out <file>', 'output file (default: <name>-<version>.maap)')
    .option(
      '--example <json>',
      'smoke test, a file or inline JSON: { "request": { "inputs": [...] }, "outputs": [...], "tolerance"?: {...} }',
    )
    .option('--metrics <json>', 'training metrics, a file or inline JSON: { "accuracy": 0.97, ... }')
    .option('--params <json>', 'training parameters (a file or inline JSON), recorded in lineage.params')
    .option('--labels <json>', 'class names, a file or inline JSON: ["legit", "fraud"]')
    .option('--stats <json>', 'per-feature training statistics (a file or inline JSON; the drift baseline)')
    .option('--file <path>', 'another file to ship in the package (repeatable)', collect, [])
    .option('--sign-key <pem>', 'Ed25519 private key to sign the manifest with')
    .option(
      '--requires-onnxruntime <range>',
      'onnxruntime versions able to run the model (default: from the opset)',
    )
    .option('--memory-mb <n>', 'memory the model needs to run', (v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 1)
        throw new InvalidArgumentError('--memory-mb must be a whole number of MB');
      return n;
    })
    .option('--json', 'print the result as JSON')
    .action(async (model: string, opts) => {
      const progress = createProgress('pack', 0, { json: opts.json });
      const result = await packModel(model, {
        name: opts.name,
        version: opts.version,
        out: opts.out,
        example: opts.example,
        metrics: opts.metrics,
        params: opts.params,
        labels: opts.labels,
        stats: opts.stats,
        files: opts.file,
        signKey: opts.signKey,
        requiresOnnxruntime: opts.requiresOnnxruntime,
        memoryMb: opts.memoryMb,
        lineage: { command: ['maap', ...process.argv.slice(2)].join(' ') },
        onProgress: (done, total) => progress.update(done, total),
      }).finally(() => progress.stop());
      if (opts.json) {
        console.log(
          JSON.stringify({
            path: result.path,
            id: result.id,
            bytes: result.bytes,
            signed: result.signed,
            manifest: result.manifest,
          }),
        );
      } else {
        const { name, version } = result.manifest;
        console.log(
          `packed ${name}@${version} → ${result.path} (${formatBytes(result.bytes)}, ${result.signed ? 'signed' : 'unsigned'}, id ${result.id.slice(0, 16)})`,
        );
      }
    });

  program
    .command('inspect')
    .description('verify a package and show its manifest')
    .argument('<pkg>', 'a .maap file')
    .option('--json', 'print the manifest and verification result as JSON')
    .action(async (pkg: string, opts) => {
      const verified = await verifyWithProgress(pkg, [], opts.json);
      if (opts.json) console.log(JSON.stringify(summary(verified)));
      else printManifest(verified);
    });

  program
    .command('verify')
    .description('check a package: structure, hashes, model graph, and signature')
    .argument('<pkg>', 'a .maap file')
    .option(
      '--trusted-key <pub>',
      'Ed25519 public key the package must be signed with (repeatable)',
      collect,
      [],
    )
    .option('--json', 'print the result as JSON')
    .action(async (pkg: string, opts) => {
      const verified = await verifyWithProgress(pkg, opts.trustedKey, opts.json);
      if (opts.json) console.log(JSON.stringify({ ok: true, ...summary(verified) }));
      else {
        const { name, version } = verified.manifest;
        const sig = verified.signedBy
          ? `signed by ${verified.signedBy}`
          : verified.signed
            ? 'signed (no trusted key given to check it)'
            : 'unsigned';
        console.log(
          `ok ${name}@${version} (${formatBytes(verified.bytes)}, ${sig}, id ${verified.id.slice(0, 16)})`,
        );
      }
    });

  program
    .command('keygen')
    .description('create an Ed25519 key pair: <prefix>.key (private, 0600) and <prefix>.pub')
    .requiredOption('--out <prefix>', 'path prefix of the two key files')
    .action(async (opts) => {
      const keys = await generateKeyFiles(opts.out);
      console.log(
        `wrote ${keys.privatePath} (keep it secret) and ${keys.publicPath} (fingerprint ${keys.fingerprint})`,
      );
    });

  program
    .command('sign')
    .description('sign an existing package (replaces any earlier signature)')
    .argument('<pkg>', 'a .maap file')
    .requiredOption('--key <pem>', 'Ed25519 private key')
    .action(async (pkg: string, opts) => {
      const { signedBy } = await signPackage(pkg, opts.key);
      console.log(`signed ${pkg} with key ${signedBy}`);
    });
}

async function verifyWithProgress(
  pkg: string,
  trustedKeys: string[],
  json: boolean | undefined,
): Promise<VerifiedPackage> {
  const { stat } = await import('node:fs/promises');
  const total = await stat(pkg).then(
    (s) => s.size,
    () => 0,
  );
  const progress = createProgress('verify', total, { json });
  try {
    return await verifyPackage(pkg, { trustedKeys, onProgress: (n) => progress.update(n) });
  } finally {
    progress.stop();
  }
}

function summary(v: VerifiedPackage) {
  return { id: v.id, bytes: v.bytes, signed: v.signed, signedBy: v.signedBy, manifest: v.manifest };
}
