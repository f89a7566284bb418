import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { MaapError, UsageError } from '../../lib/errors.ts';
import { type LoadedModel, loadModel, type ModelSource } from '../../lib/inference/model.ts';
import { validateRequest } from '../../lib/inference/validate.ts';
import { type ModelRef, openRegistry, parseModelRef } from '../../lib/registry/index.ts';
import { createApp, DEFAULT_BODY_LIMIT } from '../../lib/serving/app.ts';
import { ModelSlot } from '../../lib/serving/host.ts';
import { inferenceResponse } from '../../lib/serving/protocol.ts';
import { serverTelemetry } from '../../lib/telemetry/server.ts';
import { startServer } from '../../runtime/server.ts';

const REGISTRY_HELP =
  'registry for model references: s3://bucket/prefix, file:///path or a folder (default: $MAAP_REGISTRY, else ./.maap/registry)';
const collect = (value: string, previous: string[] = []) => [...previous, value];

/** A predictor answered with a non-2xx status. */
export class PredictionFailedError extends MaapError {}

function positiveInt(name: string, min = 1) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

interface ServeOptions {
  registry?: string;
  port?: number;
  host: string;
  trustedKey: string[];
  threads?: number;
  bodyLimit?: number;
}

/** Adds `serve` (run a predictor) and `predict` (one inference against a predictor or a package file). */
export function registerServeCommands(program: Command): void {
  program
    .command('serve')
    .description('serve a model over HTTP (Open Inference Protocol v2) until SIGTERM/SIGINT')
    .argument(
      '[model]',
      'a .maap file, or a registry reference: name, name@1.4.0, name@^2, name@production (default: $MAAP_MODEL)',
    )
    .option('--registry <uri>', REGISTRY_HELP)
    .option(
      '--port <port>',
      'port to listen on, 0 for any free one (default: $PORT, else 8080)',
      positiveInt('--port', 0),
    )
    .option('--host <addr>', 'address to listen on (0.0.0.0 in a container)', '127.0.0.1')
    .option(
      '--trusted-key <pub>',
      'Ed25519 public key the package must be signed with (repeatable)',
      collect,
      [],
    )
    .option(
      '--threads <n>',
      'onnxruntime intra-op threads (default: $MAAP_INTRA_OP_THREADS, else all CPUs)',
      positiveInt('--threads'),
    )
    .option(
      '--body-limit <bytes>',
      'largest request body accepted (default: 6 MiB)',
      positiveInt('--body-limit'),
    )
    .action(async (model: string | undefined, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals<ServeOptions>();
      const spec = model ?? process.env.MAAP_MODEL?.trim();
      if (!spec)
        throw new UsageError(
          'name the model to serve: a .maap file or name[@version|@range|@alias] (or set MAAP_MODEL)',
        );
      const target = parseTarget(spec); // refuse a bad name or a missing file before listening
      const slot = new ModelSlot({ reason: `loading ${spec}` });
      const app = createApp({
        models: slot,
        ...serverTelemetry(),
        ...(opts.bodyLimit ? { bodyLimit: opts.bodyLimit } : {}),
      });
      const running = await startServer({
        app,
        port: opts.port ?? defaultPort(),
        host: opts.host,
        onShutdown: () => slot.close(),
        bodyLimit: opts.bodyLimit || DEFAULT_BODY_LIMIT,
      });
      let loaded: LoadedModel;
      try {
        loaded = await withSource(target, opts.registry, (source) =>
          loadModel(source, {
            ...(opts.trustedKey.length ? { trustedKeys: opts.trustedKey } : {}),
            ...(opts.threads ? { intraOpThreads: opts.threads } : {}),
          }),
        );
        await slot.swap(loaded);
      } catch (err) {
        await running.shutdown();
        throw err;
      }
      const { stats } = loaded;
      const sig = loaded.signed ? 'signed' : 'unsigned';
      process.stderr.write(
        `maap: loaded ${loaded.name}@${loaded.version} from ${stats.origin} (${sig}, smoke test ${stats.smokeTest}, warm-up ${stats.warmUp}, ${Math.round(stats.totalMs)} ms)\n`,
      );
      console.log(`serving ${loaded.name}@${loaded.version} at ${running.url}/v2/models/${loaded.name}`);
    });

  program
    .command('predict')
    .description('run one inference request against a predictor URL or, in-process, a .maap file')
    .argument('<target>', 'http(s)://host:port[/v2/models/<name>[/versions/<v>]], or a .maap file')
    .requiredOption(
      '--input <file>',
      'the inference request as JSON (or an example file with "request"); - for stdin',
    )
    .option('--model <name>', 'model name, when the URL does not name one')
    .option('--model-version <v>', 'model version to ask for (URL targets)')
    .option(
      '--trusted-key <pub>',
      'Ed25519 public key a .maap file must be signed with (repeatable)',
      collect,
      [],
    )
    .action(async (target: string, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals<{
        input: string;
        model?: string;
        modelVersion?: string;
        trustedKey: string[];
      }>();
      const request = await readRequest(opts.input);
      const response = /^https?:\/\//i.test(target)
        ? await predictRemote(inferUrl(target, opts.model, opts.modelVersion), request)
        : await predictLocal(target, request, opts);
      console.log(JSON.stringify(response, null, 2));
    });
}

function defaultPort(): number {
  const port = Number(process.env.PORT);
  return Number.isSafeInteger(port) && port > 0 && port < 65536 ? port : 8080;
}

type Target = { readonly file: string } | { readonly ref: ModelRef };

/** A path to an existing file → that package file; otherwise a registry reference (validated). */
function parseTarget(spec: string): Target {
  if (existsSync(spec) && statSync(spec).isFile()) return { file: spec };
  if (spec.endsWith('.maap') || spec.includes('/') || spec.includes('\\')) {
    throw new UsageError(`${spec}: no such package file`);
  }
  return { ref: parseModelRef(spec) };
}

/** Runs `fn` on the target's model source; a registry is opened for it and closed afterwards. */
async function withSource<T>(
  target: Target,
  registryUri: string | undefined,
  fn: (s: ModelSource) => Promise<T>,
): Promise<T> {
  if ('file' in target) return fn(target.file);
  const registry = openRegistry(registryUri);
  try {
    return await fn({ registry, ref: target.ref });
  } finally {
    await registry.close();
  }
}

async function readRequest(input: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = input === '-' ? await readStdin() : await readFile(input, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read ${input}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${input === '-' ? 'stdin' : input} is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(
      `${input === '-' ? 'stdin' : input} must hold an inference request object ({ "inputs": [...] })`,
    );
  }
  const record = value as Record<string, unknown>;
  // An example file (maap.json's `example`, example.json) holds the request under `request`.
  if (!('inputs' in record) && typeof record.request === 'object' && record.request !== null) {
    return record.request as Record<string, unknown>;
  }
  return record;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const MODEL_PATH = /\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?$/;

/** The infer endpoint for a URL: `.../infer` as given, `/v2/models/<name>[...]` + `/infer`, or base + `--model`. */
export function inferUrl(target: string, model?: string, version?: string): string {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new UsageError(`invalid URL ${target}`);
  }
  const path = url.pathname.replace(/\/+$/, '');
  if (path.endsWith('/infer') && MODEL_PATH.test(path.slice(0, -'/infer'.length)))
    return `${url.origin}${path}`;
  if (MODEL_PATH.test(path)) return `${url.origin}${path}/infer`;
  if (!model) {
    throw new UsageError(
      `name the model: --model <name>, or give the URL as ${url.origin}${path}/v2/models/<name> (the protocol has no way to list a server's models)`,
    );
  }
  const versioned = version ? `/versions/${encodeURIComponent(version)}` : '';
  return `${url.origin}${path}/v2/models/${encodeURIComponent(model)}${versioned}/infer`;
}

async function predictRemote(url: string, request: Record<string, unknown>): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new PredictionFailedError(
      `cannot reach ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
    );
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const error = (body as { error?: unknown } | undefined)?.error;
    const message = typeof error === 'string' ? error : text.slice(0, 500) || response.statusText;
    throw new PredictionFailedError(`${url} answered ${response.status}: ${message}`);
  }
  if (body === undefined)
    throw new PredictionFailedError(`${url} answered ${response.status} with a body that is not JSON`);
  return body;
}

async function predictLocal(
  file: string,
  request: Record<string, unknown>,
  opts: { model?: string; modelVersion?: string; trustedKey: string[] },
): Promise<unknown> {
  if (!existsSync(file)) throw new UsageError(`${file}: no such package file (or give an http(s):// URL)`);
  const model = await loadModel(file, opts.trustedKey.length ? { trustedKeys: opts.trustedKey } : {});
  try {
    if (opts.model !== undefined && opts.model !== model.name) {
      throw new UsageError(`${file} holds model ${model.name}, not ${opts.model}`);
    }
    if (opts.modelVersion !== undefined && opts.modelVersion !== model.version) {
      throw new UsageError(`${file} holds ${model.name}@${model.version}, not version ${opts.modelVersion}`);
    }
    const validated = validateRequest(request, model.signature, model.limits);
    return inferenceResponse(model, validated.id, await model.run(validated));
  } finally {
    await model.close();
  }
}
