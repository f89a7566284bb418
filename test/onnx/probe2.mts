import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import * as F from '../fixtures/models.ts';
const dir = mkdtempSync(join(tmpdir(), 'ext-'));
writeFileSync(join(dir, 'weights.bin'), Buffer.from(Float32Array.from([1, 0, 0, 1, 0, 0, 0, 0]).buffer));
writeFileSync(join(dir, 'constant.bin'), Buffer.from(Float32Array.from([100, 200]).buffer));
process.chdir(dir);
for (const [n, f] of [['ext', F.externalDataModel()], ['constTop', F.externalConstantModel({ nested: false })], ['constNested', F.externalConstantModel()], ['abs', F.externalDataModel(join(dir, 'weights.bin'))], ['dotdot', F.externalDataModel('../' + dir.split('/').pop() + '/weights.bin')]] as const) {
  try {
    const s = await ort.InferenceSession.create(f.bytes);
    const feeds: Record<string, ort.Tensor> = n.startsWith('const') ? { x: new ort.Tensor('float32', [1, 2], [2]) } : { x: new ort.Tensor('float32', [1, 2, 3, 4], [1, 4]) };
    if (n === 'constNested') feeds.cond = new ort.Tensor('bool', [1], []);
    const r = await s.run(feeds);
    console.log(n, 'LOADED FROM CWD', r.y?.data);
  } catch (e) { console.log(n, 'FAIL', (e as Error).message.slice(0, 250)); }
}
const s = await ort.InferenceSession.create(F.identityModel('FP32').bytes);
try { const r = await s.run({ x: new ort.Tensor('float32', [1, 2, 3], [1, 3]), zzz: new ort.Tensor('float32', [1], [1]) }); console.log('extra feed ok', r.y?.data); } catch (e) { console.log('extra feed FAIL', (e as Error).message); }
for (const v of [21, 22, 23, 24, 25, 26]) {
  try { await ort.InferenceSession.create(F.opsetModel({ '': v }).bytes); console.log('opset', v, 'ok'); } catch (e) { console.log('opset', v, 'FAIL', (e as Error).message.slice(-200)); }
}
for (const v of [5, 6]) {
  try { await ort.InferenceSession.create(F.opsetModel({ '': 17, 'ai.onnx.ml': v }).bytes); console.log('ml', v, 'ok'); } catch (e) { console.log('ml', v, 'FAIL', (e as Error).message.slice(-200)); }
}
