import { hostname, userInfo } from 'node:os';
import * as z from 'zod/mini';
import { NotFoundError, RegistryError } from '../errors.ts';
import { mapLimit, readAll } from './io.ts';
import { checkAliasName, isAliasName } from './ref.ts';
import type { ObjectInfo, Store } from './store.ts';
import type { AliasDocument, AliasRecord, AliasUpdate, ListingProblem } from './types.ts';

/** An alias object whose content is not an alias document. */
export class AliasDocumentError extends RegistryError {}

const aliasDocument = z.object({
  version: z.string().check(z.minLength(1)),
  updatedAt: z.string(),
  by: z.string(),
});

/** Mutable pointers `<name>/aliases/<alias>.json` → `{ version, updatedAt, by }`. */
export class AliasBook {
  constructor(private readonly store: Store) {}

  static key(name: string, alias: string): string {
    return `${name}/aliases/${alias}.json`;
  }

  async get(name: string, alias: string): Promise<AliasRecord> {
    checkAliasName(alias);
    const key = AliasBook.key(name, alias);
    let raw: Buffer;
    try {
      raw = await readAll(await this.store.get(key));
    } catch (err) {
      if (err instanceof NotFoundError)
        throw new NotFoundError(`alias ${name}@${alias} not found in ${this.store.uri}`);
      throw err;
    }
    let parsed: AliasDocument;
    try {
      parsed = aliasDocument.parse(JSON.parse(raw.toString('utf8')));
    } catch (err) {
      throw new AliasDocumentError(
        `alias ${name}@${alias} in ${this.store.uri} is not a valid alias document`,
        {
          cause: err,
        },
      );
    }
    return { name, alias, version: parsed.version, updatedAt: parsed.updatedAt, by: parsed.by };
  }

  /** Writes the alias after `check` (which verifies the version exists) passes. */
  async set(name: string, alias: string, version: string, check: () => Promise<void>): Promise<AliasUpdate> {
    checkAliasName(alias);
    await check();
    const previous = await this.get(name, alias).catch((err) => {
      if (err instanceof NotFoundError || err instanceof RegistryError) return undefined;
      throw err;
    });
    const doc: AliasDocument = { version, updatedAt: new Date().toISOString(), by: actor() };
    await this.store.put(AliasBook.key(name, alias), `${JSON.stringify(doc, null, 2)}\n`, {
      contentType: 'application/json',
    });
    return { name, alias, ...doc, ...(previous ? { previous: previous.version } : {}) };
  }

  /** Every alias of a model, sorted by alias name. `objects` may carry a listing already made. */
  async list(
    name: string,
    objects?: readonly ObjectInfo[],
    problems?: ListingProblem[],
  ): Promise<AliasRecord[]> {
    const prefix = `${name}/aliases/`;
    const listing = objects ?? (await this.store.list(prefix));
    const aliases = listing
      .filter((o) => o.key.startsWith(prefix) && o.key.endsWith('.json'))
      .map((o) => o.key.slice(prefix.length, -'.json'.length))
      .filter(isAliasName)
      .sort();
    const records = await mapLimit(aliases, 8, (alias) =>
      this.get(name, alias).catch((err) => {
        if (err instanceof NotFoundError) return undefined; // removed since the listing
        if (problems && err instanceof AliasDocumentError) {
          problems.push({ key: `${prefix}${alias}.json`, error: err.message });
          return undefined;
        }
        throw err;
      }),
    );
    return records.filter((r): r is AliasRecord => r !== undefined);
  }
}

/** Who changes an alias: `MAAP_ACTOR`, else `user@host`. */
export function actor(): string {
  const fromEnv = process.env.MAAP_ACTOR?.trim();
  if (fromEnv) return fromEnv;
  let user = process.env.USER ?? process.env.USERNAME ?? 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): keep the environment's idea
  }
  return `${user}@${hostname()}`;
}
