/**
 * maap's main job on the embedded default, end to end, on a laptop with no cloud account:
 * train a model (examples/fraud-ts) → pack it (signature read from the graph, metrics, example, lineage) →
 * sign it → push it to the local registry (./.maap/registry) → point the `production` alias at it →
 * pull it back by alias, verified against the trusted key → serve fraud@production on a local HTTP server
 * (Open Inference Protocol v2) and send it the model's own example request. Run it again and it publishes
 * the next version.
 *
 *   npm start
 */
import { access } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import semver from 'semver';
import { MaapError, NotFoundError } from '../lib/errors.ts';
import { loadModel } from '../lib/inference/model.ts';
import { packModel } from '../lib/package/pack.ts';
import { generateKeyFiles } from '../lib/package/sign.ts';
import { openRegistry } from '../lib/registry/index.ts';
import { createApp } from '../lib/serving/app.ts';
import { ModelSlot } from '../lib/serving/host.ts';
import { serverTelemetry } from '../lib/telemetry/server.ts';
import { startServer } from '../runtime/server.ts';
import { train } from './fraud-ts/train.ts';

const home = resolve(process.env.MAAP_HOME ?? '.maap');
const work = join(home, 'work');
const step = (text: string) => console.log(`\n▸ ${text}`);

async function main() {
  const registry = openRegistry();
  step('train examples/fraud-ts (logistic regression on synthetic transactions)');
  const startedAt = new Date().toISOString();
  const metrics = await train(work);
  console.log(`  accuracy ${metrics.accuracy}, auc ${metrics.auc}`);

  step('sign with the local development key');
  const keyPrefix = join(home, 'keys', 'dev');
  if (
    !(await access(`${keyPrefix}.key`).then(
      () => true,
      () => false,
    ))
  ) {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(home, 'keys'), { recursive: true });
    const keys = await generateKeyFiles(keyPrefix);
    console.log(`  created ${keys.privatePath} (fingerprint ${keys.fingerprint})`);
  } else console.log(`  using ${keyPrefix}.key`);

  const latest = await registry.resolve('fraud', 'latest').then(
    (r) => r.version,
    (err) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    },
  );
  const version = latest ? (semver.inc(latest, 'patch') as string) : '1.0.0';
  step(`pack fraud@${version}`);
  const packed = await packModel(join(work, 'model.onnx'), {
    name: 'fraud',
    version,
    out: join(work, `fraud-${version}.maap`),
    example: join(work, 'example.json'),
    metrics: join(work, 'metrics.json'),
    params: join(work, 'params.json'),
    labels: join(work, 'labels.json'),
    stats: join(work, 'stats.json'),
    signKey: `${keyPrefix}.key`,
    lineage: {
      command: 'npx tsx examples/fraud-ts/train.ts',
      startedAt,
      finishedAt: new Date().toISOString(),
      host: hostname(),
    },
  });
  const { inputs, outputs } = packed.manifest.signature;
  console.log(`  ${packed.path} (${packed.bytes} bytes, id ${packed.id.slice(0, 16)})`);
  console.log(
    `  inputs ${inputs.map((t) => `${t.name} ${t.datatype}[${t.shape}]`).join(', ')}; outputs ${outputs.map((t) => `${t.name} ${t.datatype}[${t.shape}]`).join(', ')}`,
  );

  step(`push to ${registry.uri}`);
  const pushed = await registry.push(packed.path, { trustedKeys: [`${keyPrefix}.pub`] });
  console.log(`  ${pushed.key}`);

  step('alias production → this version');
  const alias = await registry.setAlias('fraud', 'production', version);
  console.log(`  fraud@production: ${alias.previous ?? '(new)'} → ${alias.version}`);

  step('pull fraud@production, verified against the trusted key');
  const pulled = await registry.pull('fraud', 'production', join(work, 'pulled.maap'), {
    trustedKeys: [`${keyPrefix}.pub`],
  });
  console.log(`  ${pulled.path}: fraud@${pulled.version}, signed, id ${pulled.id.slice(0, 16)}`);

  step('registry contents');
  for (const model of await registry.list()) {
    for (const v of model.versions)
      console.log(
        `  ${model.name}@${v.version}  ${v.size} B  ${Object.entries(v.metrics)
          .map(([k, n]) => `${k}=${n}`)
          .join(' ')}`,
      );
    for (const a of model.aliases) console.log(`  ${model.name}@${a.alias} → ${a.version}`);
  }

  step('serve fraud@production on a local server (verified, smoke-tested) and call it over HTTP');
  const slot = new ModelSlot({ reason: 'loading fraud@production' });
  const server = await startServer({
    app: createApp({ models: slot, ...serverTelemetry() }),
    port: 0,
    host: '127.0.0.1',
    onShutdown: () => slot.close(),
    handleSignals: false,
  });
  try {
    const model = await loadModel(
      { registry, ref: 'fraud@production' },
      { trustedKeys: [`${keyPrefix}.pub`] },
    );
    await slot.swap(model);
    console.log(
      `  serving fraud@${model.version} at ${server.url}/v2/models/fraud (smoke test ${model.stats.smokeTest})`,
    );
    const request = { id: 'quickstart-1', ...packed.manifest.example?.request };
    const response = await fetch(`${server.url}/v2/models/fraud/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
    const body = (await response.json()) as { outputs?: { name: string; data: unknown[] }[]; error?: string };
    if (!response.ok) throw new Error(`the predictor answered ${response.status}: ${body.error}`);
    console.log(`  POST /v2/models/fraud/infer → ${response.status}`);
    for (const output of body.outputs ?? [])
      console.log(`    ${output.name}: ${JSON.stringify(output.data)}`);
  } finally {
    await server.shutdown();
  }
  await registry.close();
  console.log('\nNext: npm run maap -- serve fraud@production, then in another shell:');
  console.log(
    '  npm run maap -- predict http://127.0.0.1:8080/v2/models/fraud --input .maap/work/example.json',
  );
}

main().catch((err) => {
  console.error(`quickstart failed: ${err instanceof MaapError ? err.message : (err as Error).stack}`);
  process.exitCode = 1;
});
