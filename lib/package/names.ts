/**
 * The naming rules every part shares (CLI, registry, CDK constructs), free of dependencies so that a CDK app
 * can check names at synth time without loading the package reader.
 */

/** A model name: lowercase DNS-label-like, `[a-z0-9][a-z0-9-]{0,62}`. */
export const MODEL_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
