/**
 * HTTP details of the serving app that are not routes: the errors only HTTP has (405, 415), the accepted
 * request content types, request ids, and how a thrown error becomes a status and a message.
 */
import { randomUUID } from 'node:crypto';
import { HTTPException } from 'hono/http-exception';
import { MaapError } from '../errors.ts';

/** A method the route does not answer (the `Allow` header lists the ones it does). */
export class MethodNotAllowedError extends MaapError {
  override readonly status = 405;
  constructor(
    message: string,
    readonly allow: string,
  ) {
    super(message);
  }
}

/** A request body that is not JSON by its Content-Type, or declared in a charset other than UTF-8. */
export class UnsupportedMediaTypeError extends MaapError {
  override readonly status = 415;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json$/;

/**
 * Accepts `application/json` (and `application/<x>+json`) with no charset or UTF-8. A missing or empty
 * Content-Type is accepted as JSON: some HTTP clients send none, and the body is parsed strictly anyway.
 * Anything else is a 415 naming the type, e.g. curl's default `-d` type (application/x-www-form-urlencoded).
 */
export function checkContentType(header: string | undefined): void {
  if (header === undefined || header === 'application/json') return;
  if (header.trim() === '') return;
  const [type = '', ...params] = header.split(';');
  const mediaType = type.trim().toLowerCase();
  if (!JSON_TYPE.test(mediaType)) {
    throw new UnsupportedMediaTypeError(
      `content type ${JSON.stringify(clip(mediaType, 100))} is not supported: send the request as application/json`,
    );
  }
  for (const param of params) {
    const [key = '', value = ''] = param.split('=');
    const charset = value.trim().replace(/^"|"$/g, '').toLowerCase();
    if (key.trim().toLowerCase() === 'charset' && charset !== 'utf-8' && charset !== 'utf8') {
      throw new UnsupportedMediaTypeError(
        `charset ${JSON.stringify(clip(charset, 40))} is not supported: send UTF-8 JSON`,
      );
    }
  }
}

/** A caller's request id is echoed when it is sane (1-128 of A-Z a-z 0-9 . _ : @ = + / -); otherwise a UUID. */
const SANE_REQUEST_ID = /^[\w.:@=+/-]{1,128}$/;

export function requestIdFrom(header: string | undefined): string {
  // node:crypto's, not the global WebCrypto one: that loads WebCrypto on first use (milliseconds of a cold start).
  return header !== undefined && SANE_REQUEST_ID.test(header) ? header : randomUUID();
}

export interface ErrorAnswer {
  readonly status: number;
  readonly message: string;
  /** Set for our own faults (5xx except 503): the error to log with its stack. */
  readonly fault?: unknown;
}

/** Maps a thrown error to the answer: MaapError 4xx and 503 say what went wrong; anything else is a 500. */
export function errorAnswer(err: unknown, requestId: string): ErrorAnswer {
  if (err instanceof MaapError && (err.status < 500 || err.status === 503)) {
    return { status: err.status, message: err.message };
  }
  if (err instanceof HTTPException && err.status < 500) {
    return { status: err.status, message: err.message || 'bad request' };
  }
  return { status: 500, message: `internal server error (request id ${requestId})`, fault: err };
}

/** Shortens a caller-supplied string before it goes into a message. */
export function clip(s: string, max = 100): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
