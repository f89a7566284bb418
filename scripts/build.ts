/**
 * `npm run build`: the Lambda artifacts under `dist/`.
 *
 * - `dist/predictor/index.mjs` (+ `chunks/`): the predictor handler, minified ESM (node22): a small entry that
 *   starts the model's S3 GET, and the rest as a chunk it imports meanwhile, onnxruntime-node's JavaScript
 *   included. Its native files stay out: the bundle loads the binding with `require` (CommonJS resolution), which
 *   searches `NODE_PATH`, where Lambda lists `/opt/nodejs/node_modules`. `@aws-sdk/*` stays out too (never on the
 *   start path; the runtime has v3).
 * - `dist/layers/onnxruntime-linux-<arch>/nodejs/node_modules/onnxruntime-node/`: the native files that run on that
 *   platform (the binding and libonnxruntime; no other OS or architecture, no GPU providers) and the package.json
 *   that names their version.
 * - `dist/*.zip` of each, to measure them against Lambda's limits: every archive at most 50 MB zipped (direct
 *   upload), function plus layer at most 250 MB unzipped. Over a limit, the build fails and says which.
 */
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build as esbuild, type Metafile, type Plugin } from 'esbuild';
import yazl from 'yazl';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ARCHES = ['x64', 'arm64'] as const;
export type Arch = (typeof ARCHES)[number];
export const MB = 1024 * 1024;
/** Lambda quotas: deployment package and layers unzipped together; each .zip uploaded directly. */
export const LAMBDA_LIMITS = { unzippedBytes: 250 * MB, zippedBytes: 50 * MB } as const;

/**
 * The onnxruntime package whose native files the layer carries. Its JavaScript (and onnxruntime-common's) is bundled
 * into the predictor: resolving and compiling their 23 CommonJS files one by one from the layer took ~17 ms of CPU
 * on a cold start here. The bundle and the layer of one build go together (the bundle checks the layer's version).
 */
export const ORT_NODE = 'onnxruntime-node';

/** onnxruntime-node's module that loads the native binding. */
const BINDING_JS = /[\\/]onnxruntime-node[\\/]dist[\\/]binding\.js$/;

/** Where onnxruntime-node's binding.js loads the native binding from, relative to itself. */
const NATIVE_REQUIRE =
  /require\(`\.\.\/bin\/napi-v6\/\$\{process\.platform\}\/\$\{process\.arch\}\/onnxruntime_binding\.node`\)/;

/**
 * Defines `require` in the ESM bundle: for the bundled CommonJS dependencies and the layer's native binding.
 * `process.getBuiltinModule` (Node 20.16+, 22.3+) rather than an `import` of `node:module`, which would make Node
 * evaluate every export of it (and load the source-map support it keeps lazy).
 */
const BANNER = "const require=process.getBuiltinModule('node:module').createRequire(import.meta.url);";

export interface Artifact {
  readonly name: string;
  /** The folder that becomes the archive's root. */
  readonly dir: string;
  readonly zip: string;
  readonly bytes: number;
  readonly zippedBytes: number;
}

export interface BuildResult {
  readonly outDir: string;
  readonly predictor: Artifact;
  readonly layers: Readonly<Record<Arch, Artifact>>;
  readonly metafile: Metafile;
}

export interface BuildOptions {
  /** @default `<repo>/dist` */
  readonly outDir?: string;
  readonly limits?: { readonly unzippedBytes: number; readonly zippedBytes: number };
  /** Print the size table. @default true */
  readonly print?: boolean;
}

/**
 * Bundles onnxruntime-node's JavaScript, and has its native binding come from the layer: the `require` of
 * `../bin/napi-v6/<os>/<arch>/onnxruntime_binding.node` becomes one of `onnxruntime-node/bin/...` through Node's
 * CommonJS resolution, which searches `NODE_PATH`, where Lambda lists `/opt/nodejs/node_modules`. The layer's
 * package.json must name the version bundled (the binding and its JavaScript change together); a missing layer or
 * another version fails the import with what to attach.
 */
const bindingFromLayer: Plugin = {
  name: 'maap-binding-from-layer',
  setup(b) {
    // binding.js loads node:worker_threads (~3.5 ms of a cold start here) for `isMainThread` alone, which tells the
    // binding whether to free onnxruntime's process-wide environment when this thread's Node environment ends (only
    // the main thread's does). The Lambda runtime loads the handler on its main thread: it is `true`. Loaded in a
    // worker thread (which Lambda never does), the bundle would free that environment when the worker ends.
    b.onResolve({ filter: /^(node:)?worker_threads$/ }, (args) =>
      BINDING_JS.test(args.importer) ? { path: args.path, namespace: 'maap-main-thread' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'maap-main-thread' }, () => ({
      contents: 'module.exports = { isMainThread: true };',
      loader: 'js',
    }));
    b.onLoad({ filter: BINDING_JS }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!NATIVE_REQUIRE.test(source)) {
        throw new Error(`${args.path} no longer loads its binding as maap expects: update bindingFromLayer`);
      }
      const { version } = JSON.parse(await readFile(join(dirname(args.path), '../package.json'), 'utf8')) as {
        version: string;
      };
      // One line, so that the rest of binding.js keeps its lines in the source map.
      return { contents: source.replace(NATIVE_REQUIRE, () => loadNativeBinding(version)), loader: 'js' };
    });
  },
};

/**
 * The expression that loads onnxruntime-node `version`'s native binding from the layer (the layer is Linux: paths
 * are `/`-separated), checked against the layer's package.json.
 */
function loadNativeBinding(version: string): string {
  // Filled in at run time: the function's architecture.
  const attach = `attach the onnxruntime layer of the same build as this function (dist/layers/onnxruntime-linux-\${process.arch})`;
  const code = `((native) => {
    let file;
    try {
      file = require.resolve(native);
    } catch (err) {
      err.message += \`\\n(maap: onnxruntime's native binding comes from the onnxruntime layer: ${attach})\`;
      throw err;
    }
    let layer;
    try {
      layer = \`${ORT_NODE} \${JSON.parse(require('node:fs').readFileSync(file.replace(/bin\\/napi-v6\\/[^/]+\\/[^/]+\\/[^/]+$/, 'package.json'), 'utf8')).version}\`;
    } catch (err) {
      layer = \`no readable package.json naming its ${ORT_NODE} version (\${err.message})\`;
    }
    if (layer !== ${JSON.stringify(`${ORT_NODE} ${version}`)}) {
      throw new Error(\`maap: the onnxruntime layer at \${file} holds \${layer}, but this predictor bundles ${ORT_NODE} ${version}: ${attach}\`);
    }
    return require(file);
  })(\`${ORT_NODE}/bin/napi-v6/\${process.platform}/\${process.arch}/onnxruntime_binding.node\`)`;
  return code.replace(/\n\s*/g, ' ');
}

/**
 * Node's built-in modules through `process.getBuiltinModule`, not an ESM `import`: for an imported built-in, Node
 * builds a module namespace of all its exports, and reads each, which runs its lazy getters: node:crypto's loads
 * WebCrypto, node:util's parseArgs and MIME, and on Node 22 (Lambda's nodejs22.x) node:util's setTraceSigInt loads
 * worker_threads, node:fs's file watchers, promises and streams. An import gets an ES module that reads, when it
 * loads, only the exports the bundle uses (esbuild drops the others); a `require` gets the module itself. (A
 * dynamic `import()` of a built-in stays one: esbuild would hand it a default export only.)
 */
const builtinsWithoutNamespace: Plugin = {
  name: 'maap-builtins-without-namespace',
  setup(b) {
    const names = new Set(builtinModules);
    b.onResolve({ filter: /^[a-z_]/ }, (args) => {
      if (args.kind === 'dynamic-import') return undefined;
      const name = args.path.startsWith('node:') ? args.path.slice(5) : args.path;
      if (!names.has(name)) return undefined;
      // One module per importer: a module shared by several chunks would be split into a chunk of its own, one more
      // file to read and link on the cold start per built-in.
      const esm = args.kind === 'import-statement';
      return {
        path: `${relative(ROOT, args.importer)}?node:${name}${esm ? '' : '&require'}`,
        namespace: 'maap-builtin',
        pluginData: { id: `node:${name}`, esm },
      };
    });
    b.onLoad({ filter: /.*/, namespace: 'maap-builtin' }, (args) => {
      const { id, esm } = args.pluginData as { id: string; esm: boolean };
      const load = `process.getBuiltinModule(${JSON.stringify(id)})`;
      return { contents: esm ? builtinAsEsm(id, load) : `module.exports = ${load};`, loader: 'js' };
    });
  },
};

/**
 * An ES module standing in for built-in `id`: its default export and each named export, read at load only if the
 * bundle uses it (`@__PURE__`: esbuild drops the unused ones). The names are those of the Node running the build: a
 * name the bundle imports and that Node lacks fails the build.
 */
function builtinAsEsm(id: string, load: string): string {
  const exported = Object.keys(createRequire(import.meta.url)(id) as object).filter((k) => k !== 'default');
  const lines = [`const m = ${load};`, 'export default m;'];
  for (const [i, name] of exported.entries()) {
    lines.push(`const e${i} = /* @__PURE__ */ (() => m[${JSON.stringify(name)}])();`);
    lines.push(`export { e${i} as ${JSON.stringify(name)} };`);
  }
  return lines.join('\n');
}

/**
 * maap only ever uses zod's English messages (classic zod registers them by itself, `lib/package/manifest.ts` does
 * for zod/mini): leaving the other 40-odd locales out keeps them from the bundle, and from the compile time of
 * a cold start that needs zod (~1 ms per 10 KB on Lambda).
 */
const zodEnglishOnly: Plugin = {
  name: 'maap-zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: "export { default as en } from './en.js';",
      loader: 'js',
      resolveDir: dirname(args.path),
    }));
  },
};

/** Bundles the predictor handler. `write: false` only computes it (and its metafile). */
export async function bundlePredictor(outDir: string, write = true): Promise<Metafile> {
  const result = await esbuild({
    absWorkingDir: ROOT,
    entryPoints: { index: join(ROOT, 'runtime/lambda/predictor.ts') },
    outdir: join(outDir, 'predictor'),
    // The entry starts the package GET, then imports the rest as a chunk: S3 answers while that chunk loads.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    // MAAP_BUILD_NO_MINIFY=1 keeps the names, for reading a CPU profile of the bundle.
    minify: process.env.MAAP_BUILD_NO_MINIFY !== '1',
    sourcemap: 'external',
    sourcesContent: false,
    metafile: true,
    write: false,
    logLevel: 'warning',
    mainFields: ['module', 'main'],
    external: ['@aws-sdk/*'],
    plugins: [bindingFromLayer, builtinsWithoutNamespace, zodEnglishOnly],
  });
  // `require` only where esbuild's require helper is (one shared chunk): every other file would pay for an
  // import.meta and a createRequire of its own on the cold start, for nothing.
  const helpers = result.outputFiles.filter((f) => f.path.endsWith('.mjs') && REQUIRE_HELPER.test(f.text));
  if (helpers.length !== 1)
    throw new Error(`expected esbuild's require helper in one chunk, found ${helpers.length}`);
  const helper = (helpers[0] as (typeof helpers)[number]).path;
  if (write) {
    for (const file of result.outputFiles) {
      let contents: string | Uint8Array = file.contents;
      if (file.path === helper) contents = `${BANNER}\n${file.text}`;
      else if (file.path === `${helper}.map`) {
        // The banner is one more line at the top of the chunk: its source map starts one line later.
        const map = JSON.parse(file.text) as { mappings: string };
        contents = JSON.stringify({ ...map, mappings: `;${map.mappings}` });
      }
      await mkdir(dirname(file.path), { recursive: true });
      await writeFile(file.path, contents);
    }
  }
  return result.metafile;
}

/**
 * esbuild's `__require` helper, which reads a global `require` (undefined in ESM: the banner defines one), as
 * minified (`typeof require<"u"`) or not (`typeof require !== "undefined"`).
 */
export const REQUIRE_HELPER = /typeof require\s*(?:<|!==?)\s*"u(?:ndefined)?"/;

/**
 * Whether a file of the installed onnxruntime-node goes into the linux-`arch` layer: its native files for that
 * platform (the binding and libonnxruntime). Its JavaScript is in the predictor bundle; the layer's package.json is
 * written by `assembleLayer`.
 */
export function keepForLayer(file: string, arch: Arch): boolean {
  const native = /^bin\/napi-v\d+\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(file);
  if (!native) return false;
  const [, os, cpu, name = ''] = native;
  // GPU execution providers (CUDA, TensorRT) are dead weight on Lambda, which has no GPU.
  return os === 'linux' && cpu === arch && !/providers_(cuda|tensorrt|rocm|migraphx)/.test(name);
}

/**
 * Copies onnxruntime-node's native files for linux-`arch` into `<layerDir>/nodejs/node_modules/onnxruntime-node`,
 * with a package.json of its name and version only: the installed one names a `main` (and could name `exports`)
 * the layer has no file for.
 */
export async function assembleLayer(layerDir: string, arch: Arch): Promise<void> {
  const from = await packageDir(ORT_NODE, join(ROOT, 'package.json'));
  const to = join(layerDir, 'nodejs/node_modules', ORT_NODE);
  const files = (await walk(from)).filter((f) => keepForLayer(f, arch));
  if (!files.some((f) => f.endsWith(`linux/${arch}/onnxruntime_binding.node`))) {
    throw new Error(`${ORT_NODE} in ${from} has no linux-${arch} binding: reinstall it (npm ci)`);
  }
  for (const file of files) {
    await mkdir(dirname(join(to, file)), { recursive: true });
    await copyFile(join(from, file), join(to, file));
  }
  const { version } = JSON.parse(await readFile(join(from, 'package.json'), 'utf8')) as { version: string };
  await writeFile(join(to, 'package.json'), `${JSON.stringify({ name: ORT_NODE, version }, null, 2)}\n`);
}

/** The folder of an installed package, as `require` resolves it from `fromFile` (its exports may hide package.json). */
async function packageDir(pkg: string, fromFile: string): Promise<string> {
  let dir = dirname(createRequire(fromFile).resolve(pkg));
  for (;;) {
    const manifest = await readFile(join(dir, 'package.json'), 'utf8').catch(() => undefined);
    if (manifest && (JSON.parse(manifest) as { name?: string }).name === pkg) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the folder of ${pkg} (resolved from ${fromFile})`);
    dir = parent;
  }
}

/** Zips a folder (its content at the archive root) with fixed timestamps: the same input gives the same bytes. */
export async function zipDir(dir: string, zipPath: string): Promise<number> {
  const zip = new yazl.ZipFile();
  const mtime = new Date('2020-01-01T00:00:00Z');
  for (const file of await walk(dir)) zip.addFile(join(dir, file), file, { mtime, mode: 0o100644 });
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(zipPath));
  return (await stat(zipPath)).size;
}

/** The problems with a function plus each layer against the limits (empty when everything fits). */
export function checkLimits(
  predictor: Pick<Artifact, 'name' | 'bytes' | 'zippedBytes'>,
  layers: readonly Pick<Artifact, 'name' | 'bytes' | 'zippedBytes'>[],
  limits: { unzippedBytes: number; zippedBytes: number } = LAMBDA_LIMITS,
): string[] {
  const problems: string[] = [];
  for (const a of [predictor, ...layers]) {
    if (a.zippedBytes > limits.zippedBytes) {
      problems.push(`${a.name} is ${mb(a.zippedBytes)} zipped, over the ${mb(limits.zippedBytes)} limit`);
    }
  }
  for (const layer of layers) {
    const total = predictor.bytes + layer.bytes;
    if (total > limits.unzippedBytes) {
      problems.push(
        `${predictor.name} + ${layer.name} is ${mb(total)} unzipped, over the ${mb(limits.unzippedBytes)} limit`,
      );
    }
  }
  return problems;
}

export async function build(options: BuildOptions = {}): Promise<BuildResult> {
  const outDir = resolve(options.outDir ?? join(ROOT, 'dist'));
  await mkdir(outDir, { recursive: true });
  await Promise.all(
    ['predictor', 'layers', 'predictor.zip', ...ARCHES.map((a) => `onnxruntime-linux-${a}.zip`)].map((p) =>
      rm(join(outDir, p), { recursive: true, force: true }),
    ),
  );
  const metafile = await bundlePredictor(outDir);
  await writeFile(join(outDir, 'predictor.meta.json'), JSON.stringify(metafile));
  const predictor = await artifact('predictor', join(outDir, 'predictor'), join(outDir, 'predictor.zip'));
  const layers = {} as Record<Arch, Artifact>;
  await Promise.all(
    ARCHES.map(async (arch) => {
      const name = `onnxruntime-linux-${arch}`;
      const dir = join(outDir, 'layers', name);
      await assembleLayer(dir, arch);
      layers[arch] = await artifact(`layer ${name}`, dir, join(outDir, `${name}.zip`));
    }),
  );
  if (options.print !== false) console.log(sizeTable(predictor, Object.values(layers)));
  const problems = checkLimits(predictor, Object.values(layers), options.limits);
  if (problems.length > 0)
    throw new Error(`the Lambda artifacts exceed Lambda's limits:\n  ${problems.join('\n  ')}`);
  return { outDir, predictor, layers, metafile };
}

export function sizeTable(predictor: Artifact, layers: readonly Artifact[]): string {
  const rows: [string, string, string][] = [['artifact', 'unzipped', 'zipped']];
  for (const a of [predictor, ...layers])
    rows.push([`${a.name} (${relative(ROOT, a.zip)})`, mb(a.bytes), mb(a.zippedBytes)]);
  for (const l of layers) {
    rows.push([
      `function + ${l.name}`,
      mb(predictor.bytes + l.bytes),
      mb(predictor.zippedBytes + l.zippedBytes),
    ]);
  }
  rows.push([
    'Lambda limits',
    `${mb(LAMBDA_LIMITS.unzippedBytes)} total`,
    `${mb(LAMBDA_LIMITS.zippedBytes)} each`,
  ]);
  const width = rows.reduce((w, r) => Math.max(w, r[0].length), 0);
  return rows.map((r) => `${r[0].padEnd(width)}  ${r[1].padStart(14)}  ${r[2].padStart(10)}`).join('\n');
}

async function artifact(name: string, dir: string, zip: string): Promise<Artifact> {
  const files = await walk(dir);
  const sizes = await Promise.all(files.map(async (f) => (await stat(join(dir, f))).size));
  const zippedBytes = await zipDir(dir, zip);
  return { name, dir, zip, bytes: sizes.reduce((a, b) => a + b, 0), zippedBytes };
}

/** Every regular file under `dir`, as sorted `/`-separated relative paths. */
async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort();
}

function mb(bytes: number): string {
  return `${(bytes / MB).toFixed(2)} MB`;
}

async function main(): Promise<void> {
  const started = performance.now();
  const result = await build();
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  console.log(
    `built maap ${pkg.version} Lambda artifacts in ${relative(ROOT, result.outDir) || '.'}/ (${Math.round(performance.now() - started)} ms)`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(`build failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
