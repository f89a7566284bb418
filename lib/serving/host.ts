/**
 * The model a predictor serves, behind a small interface the HTTP app reads once per request. `ModelSlot` is
 * the standard host: it starts empty (not ready, with a reason) and can swap models atomically. A swap puts the
 * new model in service for every request that starts afterwards; requests already running on the old model
 * finish on it (its `run` is in flight), and the old model is closed once they have.
 */
import type { LoadedModel } from '../inference/model.ts';

export type HostState =
  | { readonly ready: true; readonly model: LoadedModel }
  | { readonly ready: false; readonly reason: string };

/** What the serving app needs from whoever owns the model. */
export interface ModelHost {
  /** The model in service now, or why there is none. A snapshot: read it once per request. */
  state(): HostState;
}

/** Why a fresh predictor is not ready. */
export const NO_MODEL_REASON = 'no model configured: set MAAP_MODEL';

export class ModelSlot implements ModelHost {
  private model: LoadedModel | undefined;
  private reason: string;
  private closed = false;

  constructor(options: { model?: LoadedModel; reason?: string } = {}) {
    this.model = options.model;
    this.reason = options.reason ?? NO_MODEL_REASON;
  }

  state(): HostState {
    return this.model ? { ready: true, model: this.model } : { ready: false, reason: this.reason };
  }

  /** The model in service, if any. */
  get current(): LoadedModel | undefined {
    return this.model;
  }

  /**
   * Puts `next` in service at once and closes the previous model after its in-flight requests finish.
   * Resolves with the previous model (closed) or undefined.
   */
  async swap(next: LoadedModel): Promise<LoadedModel | undefined> {
    if (this.closed) {
      await next.close();
      throw new Error('the model slot is closed');
    }
    const previous = this.model;
    this.model = next;
    if (previous && previous !== next) await previous.close();
    return previous;
  }

  /** Sets why the slot is not ready (e.g. "loading fraud@^2 from s3://..."), while it holds no model. */
  setReason(reason: string): void {
    this.reason = reason;
  }

  /** Takes the model out of service (requests answer 503 with `reason`) and closes it after its in-flight requests. */
  async unload(reason: string): Promise<void> {
    const previous = this.model;
    this.model = undefined;
    this.reason = reason;
    await previous?.close();
  }

  /** Unloads for good: used at shutdown. */
  async close(): Promise<void> {
    this.closed = true;
    await this.unload('the predictor is shutting down');
  }
}
