/**
 * One measured step of bench/package.ts, run in its own process so that its peak RSS is its own.
 * Prints one JSON line: { ms, maxRssMb }.
 */
import { packModel } from '../lib/package/pack.ts';
import { verifyPackage } from '../lib/package/verify.ts';
import { openRegistry } from '../lib/registry/index.ts';

const [step, ...args] = process.argv.slice(2);
const start = performance.now();
switch (step) {
  case 'idle':
    break;
  case 'pack':
    await packModel(args[0] as string, { name: 'big', version: args[2] as string, out: args[1] as string });
    break;
  case 'verify':
    await verifyPackage(args[0] as string);
    break;
  case 'push': {
    const registry = openRegistry(args[1]);
    await registry.push(args[0] as string);
    await registry.close();
    break;
  }
  case 'pull': {
    const registry = openRegistry(args[1]);
    await registry.pull('big', args[2] as string, args[0] as string);
    await registry.close();
    break;
  }
  default:
    throw new Error(`unknown step ${step}`);
}
const ms = performance.now() - start;
console.log(JSON.stringify({ ms, maxRssMb: process.resourceUsage().maxRSS / 1024 }));
