/**
 * The baseline of bench/serve.ts: a bare node:http server that parses the request, runs `session.run` on
 * the same model with the same onnxruntime options as `maap serve` (its `sessionOptions`), and answers JSON.
 * No validation, no logging, no metrics.
 *
 *   tsx bench/bare-server.ts <model.onnx> <input-name> <threads>
 */
import { createServer } from 'node:http';
import * as ort from 'onnxruntime-node';
import { sessionOptions } from '../lib/inference/model.ts';

const [modelPath, inputName, threads] = process.argv.slice(2) as [string, string, string];
const session = await ort.InferenceSession.create(
  modelPath,
  sessionOptions({ intraOpThreads: Number(threads) }),
);

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', async () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const input = body.inputs[0];
      // new Float32Array(array) copies in one pass; Float32Array.from(array.flat(Infinity)) walks the iterator
      // protocol over a copy (~0.3 ms for the heavy model's 2048 numbers, a baseline slower than maap's codec).
      const data: unknown[] = input.data;
      const flat = Array.isArray(data[0]) ? data.flat(Number.POSITIVE_INFINITY) : data;
      const tensor = new ort.Tensor('float32', new Float32Array(flat as number[]), input.shape);
      const results = await session.run({ [inputName]: tensor });
      const outputs = Object.entries(results).map(([name, t]) => ({
        name,
        datatype: 'FP32',
        shape: t.dims,
        data: Array.from(t.data as Float32Array),
      }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ model_name: 'bench', outputs }));
    } catch (err) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: (err as Error).message }));
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as { port: number };
  console.log(`listening http://127.0.0.1:${address.port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
