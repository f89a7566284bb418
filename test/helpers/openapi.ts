/**
 * Validates predictor responses against the Open Inference Protocol's own OpenAPI document
 * (shared/spec/open_inference_rest.yaml). The document's component schemas are OpenAPI 3.0 dialect: they are
 * converted to JSON Schema (refs re-pointed, `x-*` extensions dropped) and compiled with ajv.
 *
 * The document gives no schema for the health endpoints, the model ready endpoint, or some error answers; those
 * come from the prose specification (inference_rest.md) and are stated below. Error bodies are held to the
 * prose's `{"error": $string}` with nothing else.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
export const OPENAPI_PATH = join(here, '../../../shared/spec/open_inference_rest.yaml');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** OpenAPI 3.0 schema object → JSON Schema: `#/components/schemas/x` → `#/definitions/x`, no `x-*` keys. */
export function toJsonSchema(node: Json): Json {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== 'object') return node;
  const out: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('x-') || key === 'example' || key === 'examples') continue;
    if (key === '$ref' && typeof value === 'string') {
      out.$ref = value.replace('#/components/schemas/', '#/definitions/');
    } else if (key === 'nullable') {
    } else {
      out[key] = toJsonSchema(value);
    }
  }
  return out;
}

/** Schemas the prose specification defines and the OpenAPI document does not. */
const PROSE_SCHEMAS: Record<string, Json> = {
  live_server_response: {
    type: 'object',
    properties: { live: { type: 'boolean' } },
    required: ['live'],
  },
  ready_server_response: {
    type: 'object',
    properties: { ready: { type: 'boolean' } },
    required: ['ready'],
  },
  ready_model_response: {
    type: 'object',
    properties: { name: { type: 'string' }, ready: { type: 'boolean' } },
    required: ['name', 'ready'],
  },
  error_response: {
    type: 'object',
    properties: { error: { type: 'string', minLength: 1 } },
    required: ['error'],
    additionalProperties: false,
  },
};

interface OpenApiDocument {
  paths: Record<
    string,
    Record<
      string,
      { responses?: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }> }
    >
  >;
  components: { schemas: Record<string, Json> };
}

function load(): { doc: OpenApiDocument; ajv: Ajv } {
  const doc = parse(readFileSync(OPENAPI_PATH, 'utf8')) as OpenApiDocument;
  const definitions = {
    ...(toJsonSchema(doc.components.schemas as Json) as Record<string, Json>),
    ...PROSE_SCHEMAS,
  };
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajv.addSchema({ $id: 'oip', definitions });
  return { doc, ajv };
}

const { doc, ajv } = load();
const compiled = new Map<string, ValidateFunction>();

/** The compiled validator of one schema (a component of the document, or a prose one above). */
export function schema(name: string): ValidateFunction {
  let fn = compiled.get(name);
  if (!fn) {
    fn = ajv.getSchema(`oip#/definitions/${name}`);
    if (!fn) throw new Error(`no schema ${name} in the OpenAPI document or the prose schemas`);
    compiled.set(name, fn);
  }
  return fn;
}

/** The 200 schema the OpenAPI document names for an operation (`/v2/models/${MODEL_NAME}/...` templates). */
function documentSchemaFor(method: string, path: string): string | undefined {
  for (const [template, operations] of Object.entries(doc.paths)) {
    const pattern = template
      .replace(/\/$/, '')
      .replace(/\/versions\/\$\{MODEL_VERSION\}/, '(?:/versions/[^/]+)?')
      .replace(/\$\{MODEL_NAME\}/, '[^/]+');
    if (!new RegExp(`^${pattern}/?$`).test(path)) continue;
    const ref =
      operations[method.toLowerCase()]?.responses?.['200']?.content?.['application/json']?.schema?.$ref;
    if (ref) return ref.replace('#/components/schemas/', '');
  }
  return undefined;
}

/** Which schema a response must satisfy. */
export function schemaNameFor(method: string, path: string, status: number): string {
  if (status >= 400) return 'error_response';
  const bare = path.split('?')[0] ?? path;
  if (bare === '/v2/health/live') return 'live_server_response';
  if (bare === '/v2/health/ready') return 'ready_server_response';
  if (/^\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?\/ready$/.test(bare)) return 'ready_model_response';
  const name = documentSchemaFor(method, bare);
  if (!name) throw new Error(`the OpenAPI document has no 200 schema for ${method} ${bare}`);
  return name;
}

/** Throws, listing ajv's complaints, unless `body` is a valid answer to `method path` with `status`. */
export function assertValidResponse(method: string, path: string, status: number, body: unknown): void {
  const name = schemaNameFor(method, path, status);
  const validate = schema(name);
  if (!validate(body)) {
    const problems = (validate.errors ?? [])
      .map((e) => `${e.instancePath || '(root)'} ${e.message}`)
      .join('; ');
    throw new Error(
      `${method} ${path} → ${status}: body does not match ${name}: ${problems}\n${JSON.stringify(body).slice(0, 500)}`,
    );
  }
}
