#!/usr/bin/env node
// The installed `maap` command: runs the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./maap.ts');
process.exitCode = await main(process.argv.slice(2));
