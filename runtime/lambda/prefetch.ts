/**
 * Starts reading the configured package from S3 before the predictor's heavy modules load, so that the S3 round
 * trip overlaps their compilation and onnxruntime's native load instead of following them. Light on purpose: it
 * imports only the signed GET (SigV4 over node:crypto, node:http) and reads the environment by hand. Anything it
 * cannot handle (a folder registry, an alias, a range, a missing setting) it leaves to the regular load, which
 * reports it.
 */
import type { Readable } from 'node:stream';
import { type S3GetConfig, type S3Object, s3ConfigFromEnv, s3Get } from '../../lib/registry/s3-get.ts';

/**
 * The predictor's S3 reads during the init, which Lambda ends after 10 s: S3 must start answering within 6 s over
 * all tries (it takes tens of milliseconds when reachable), so that an S3 out of reach (a VPC without an endpoint
 * or NAT) ends the init with readiness 503 and the reason, instead of Lambda cutting the init short and retrying it
 * inside every invocation. The transfer keeps s3Get's 30 s of inactivity: the early GET's body waits, unread,
 * while the modules load, and a shorter stall bound would cut it off on a slow start.
 */
export const INIT_S3_TIMEOUTS = { answerWithinMs: 6_000 } as const;

/**
 * Longest the entry point waits for the early GET to go out before it loads the heavy modules (see `sent`), counted
 * from the first turn of the event loop, after the GET's synchronous setup (loading node:https and TLS, signing,
 * creating the request: ~20 ms on Node 22 here). Waiting for the whole handshake never costs more than it saves
 * while the import blocks the loop (the handshake's round trips would follow the import otherwise); the bound only
 * stops a connection that never comes (S3 out of reach) from holding the start.
 */
export const SEND_WAIT_MS = 200;

/** The S3 settings of the environment, with the init's timeouts. */
export function initS3Config(env: NodeJS.ProcessEnv): S3GetConfig {
  return { ...s3ConfigFromEnv(env), ...INIT_S3_TIMEOUTS };
}

/** A GET already in flight for the registry key `key` of registry `uri`. */
export interface Prefetch {
  readonly uri: string;
  readonly key: string;
  /** Hands over the body (once); later calls, or another key, get `undefined`. */
  take(uri: string, key: string): Promise<Readable> | undefined;
  /** Drops the transfer when the load ended without taking it. */
  discard(): void;
  /**
   * Resolves once the GET has gone out (connection and TLS established, request written), once it failed, or after
   * `SEND_WAIT_MS`; never rejects. The entry point awaits it before the heavy import: Node 22 runs that import to its
   * end without turning the event loop, so a connection still being established would wait for it, and S3's
   * answer time would follow the import instead of overlapping it.
   */
  readonly sent: Promise<void>;
}

const EXACT_VERSION = /^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$/;
const S3_URI = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/*(.*?)\/*$/;

/** Starts the GET of `<prefix>/<MAAP_MODEL>/<MAAP_MODEL_VERSION>.maap` when the registry is S3 and the version exact. */
export function prefetchPackage(
  env: NodeJS.ProcessEnv = process.env,
  sendWaitMs: number = SEND_WAIT_MS,
): Prefetch | undefined {
  const registry = env.MAAP_REGISTRY?.trim() ?? '';
  const [name = '', inlineSpec] = (env.MAAP_MODEL?.trim() ?? '').split('@');
  const version = EXACT_VERSION.exec(env.MAAP_MODEL_VERSION?.trim() || inlineSpec || '')?.[1];
  const location = S3_URI.exec(registry);
  if (!location || !name || !version) return undefined;
  const [, bucket = '', prefix = ''] = location;
  let config: S3GetConfig;
  try {
    config = initS3Config(env);
  } catch {
    return undefined; // the regular load reports the missing credentials
  }
  const uri = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
  const key = `${name}/${version}.maap`;
  let markSent: () => void = () => {};
  const sent = new Promise<void>((resolve) => {
    markSent = resolve;
  });
  // The bound starts once the event loop turns: the GET's setup above and in s3Get runs before, synchronously.
  let wait: NodeJS.Timeout | undefined;
  const start = setImmediate(() => {
    wait = setTimeout(markSent, sendWaitMs);
  });
  const gone = (): void => {
    clearImmediate(start);
    clearTimeout(wait);
    markSent();
  };
  const object: Promise<S3Object> = s3Get(bucket, prefix ? `${prefix}/${key}` : key, {
    ...config,
    onSent: gone,
  });
  // The taker sees an error; until it takes the body, nobody else may (an 'error' without a listener would end the
  // process): the GET's failure is caught here, and so is the body's, which the taker finds on the stream.
  object.then(
    (o) => o.body.on('error', () => {}),
    gone, // failed before it went out (a bad setting): nothing to wait for
  );
  let taken = false;
  return {
    uri,
    key,
    sent,
    take(wantedUri, wantedKey) {
      if (taken || wantedUri !== uri || wantedKey !== key) return undefined;
      taken = true;
      return object.then((o) => {
        if (o.body.errored) throw o.body.errored; // broke before it was taken
        return o.body;
      });
    },
    discard() {
      if (taken) return;
      taken = true;
      object.then(
        (o) => o.body.destroy(),
        () => {},
      );
    },
  };
}
