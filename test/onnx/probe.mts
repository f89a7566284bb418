import * as ort from 'onnxruntime-node';
import * as F from '../fixtures/models.ts';
const cases: [string, () => { bytes: Buffer }][] = [
  ['ext', () => F.externalDataModel()],
  ['extConstNested', () => F.externalConstantModel()],
  ['extConstTop', () => F.externalConstantModel({ nested: false })],
  ['seq', () => F.sequenceOutputModel()],
  ['map', () => F.mapInputModel()],
  ['ir3', () => F.initializerAsInputModel()],
  ['multi', () => F.multiIoModel()],
  ['opsetml', () => F.opsetModel({ '': 17, 'ai.onnx.ml': 3 })],
  ['opsetmlonly', () => F.opsetModel({ 'ai.onnx.ml': 3 })],
  ['opset21ml5', () => F.opsetModel({ '': 21, 'ai.onnx.ml': 5 })],
  ['opset99', () => F.opsetModel({ '': 99 })],
];
for (const [n, f] of cases) {
  try {
    const s = await ort.InferenceSession.create(f().bytes);
    console.log(n, 'OK', s.inputNames, s.outputNames, JSON.stringify(s.inputMetadata), JSON.stringify(s.outputMetadata));
    if (n === 'extConstNested') {
      try { const r = await s.run({ cond: new ort.Tensor('bool', [1], []), x: new ort.Tensor('float32', [1, 2], [2]) }); console.log(' run true', r.y?.data); } catch (e) { console.log(' run true FAIL', (e as Error).message.slice(0, 300)); }
      try { const r = await s.run({ cond: new ort.Tensor('bool', [0], []), x: new ort.Tensor('float32', [1, 2], [2]) }); console.log(' run false', r.y?.data); } catch (e) { console.log(' run false FAIL', (e as Error).message.slice(0, 300)); }
    }
    if (n === 'seq') {
      try { const r = await s.run({ x: new ort.Tensor('float32', [1, 2, 3], [1, 3]) }); console.log(' run', Object.keys(r), r.seq); } catch (e) { console.log(' run FAIL', (e as Error).message.slice(0, 300)); }
    }
    if (n === 'ir3') {
      const r = await s.run({ x: new ort.Tensor('float32', [1, 2], [1, 2]) }); console.log(' run', r.y?.data);
      const r2 = await s.run({ x: new ort.Tensor('float32', [1, 2], [1, 2]), w: new ort.Tensor('float32', [5, 5], [2]) }).catch((e) => (e as Error).message); console.log(' override', (r2 as any).y?.data ?? r2);
    }
  } catch (e) { console.log(n, 'FAIL', (e as Error).message.slice(0, 300)); }
}
