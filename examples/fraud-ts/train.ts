/**
 * A real, dependency-free trainer in TypeScript: logistic regression (softmax over two classes) fitted by
 * gradient descent on a seeded synthetic "card transactions" data set, exported to ONNX with maap's builder.
 *
 * It follows maap's trainer contract: it writes into $MAAP_OUTPUT_DIR (default ./out) `model.onnx`,
 * `metrics.json`, `params.json`, `example.json`, `labels.json` and `stats.json`.
 *
 *   npx tsx examples/fraud-ts/train.ts            # or: maap train -- npx tsx examples/fraud-ts/train.ts
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { encodeModel } from '../../lib/onnx/builder.ts';

export const FEATURES = ['amount', 'hour', 'distance_km', 'merchant_risk'] as const;
export const LABELS = ['legit', 'fraud'];

export interface TrainParams {
  readonly seed: number;
  readonly samples: number;
  readonly epochs: number;
  readonly learningRate: number;
}

export const DEFAULT_PARAMS: TrainParams = { seed: 42, samples: 4000, epochs: 300, learningRate: 0.5 };

/** mulberry32: a small seeded PRNG, so that every run trains the same model. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** Synthetic transactions: fraud is larger, at night, far from home, at risky merchants. Standardised features. */
export function makeDataset(params: TrainParams): { x: number[][]; y: number[] } {
  const rand = rng(params.seed);
  const x: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < params.samples; i++) {
    const fraud = rand() < 0.2 ? 1 : 0;
    const shift = fraud ? 1.2 : 0;
    x.push([
      gaussian(rand) + shift,
      gaussian(rand) - shift * 0.8,
      gaussian(rand) + shift,
      gaussian(rand) + shift * 0.6,
    ]);
    y.push(fraud);
  }
  return { x, y };
}

export interface Trained {
  readonly weights: number[][]; // [features][classes]
  readonly bias: number[]; // [classes]
}

function softmax2(z0: number, z1: number): [number, number] {
  const m = Math.max(z0, z1);
  const e0 = Math.exp(z0 - m);
  const e1 = Math.exp(z1 - m);
  return [e0 / (e0 + e1), e1 / (e0 + e1)];
}

export function predict(model: Trained, row: readonly number[]): [number, number] {
  const z = [0, 1].map((c) =>
    row.reduce((s, v, f) => s + v * (model.weights[f]?.[c] ?? 0), model.bias[c] ?? 0),
  );
  return softmax2(z[0] as number, z[1] as number);
}

export function fitModel(x: number[][], y: number[], params: TrainParams): Trained {
  const nf = FEATURES.length;
  const weights = Array.from({ length: nf }, () => [0, 0]);
  const bias = [0, 0];
  for (let epoch = 0; epoch < params.epochs; epoch++) {
    const gw = Array.from({ length: nf }, () => [0, 0]);
    const gb = [0, 0];
    for (const [i, row] of x.entries()) {
      const p = predict({ weights, bias }, row);
      for (let c = 0; c < 2; c++) {
        const err = (p[c] as number) - (y[i] === c ? 1 : 0);
        gb[c] = (gb[c] as number) + err;
        for (let f = 0; f < nf; f++)
          (gw[f] as number[])[c] = ((gw[f] as number[])[c] as number) + err * (row[f] as number);
      }
    }
    for (let c = 0; c < 2; c++) {
      bias[c] = (bias[c] as number) - (params.learningRate * (gb[c] as number)) / x.length;
      for (let f = 0; f < nf; f++)
        (weights[f] as number[])[c] =
          ((weights[f] as number[])[c] as number) -
          (params.learningRate * ((gw[f] as number[])[c] as number)) / x.length;
    }
  }
  return { weights, bias };
}

/** Accuracy and ROC AUC (rank statistic) on a data set. */
export function evaluate(model: Trained, x: number[][], y: number[]): { accuracy: number; auc: number } {
  const scores = x.map((row) => predict(model, row)[1]);
  const accuracy = scores.filter((s, i) => (s >= 0.5 ? 1 : 0) === y[i]).length / x.length;
  const order = scores.map((s, i) => [s, y[i] as number] as const).sort((a, b) => a[0] - b[0]);
  let rankSum = 0;
  let positives = 0;
  for (const [rank, [, label]] of order.entries()) {
    if (label === 1) {
      rankSum += rank + 1;
      positives++;
    }
  }
  const negatives = x.length - positives;
  const auc = (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
  return { accuracy: round(accuracy), auc: round(auc) };
}

const round = (v: number) => Math.round(v * 1e4) / 1e4;

/** The model as ONNX: probabilities = Softmax(Gemm(features, W, b)), label = ArgMax(probabilities). */
export function toOnnx(model: Trained): Buffer {
  return encodeModel({
    producer: { name: 'maap-example-fraud-ts', version: '1.0.0' },
    graph: {
      name: 'fraud_logreg',
      inputs: [{ name: 'features', elemType: 'FLOAT', shape: ['batch', FEATURES.length] }],
      outputs: [
        { name: 'probabilities', elemType: 'FLOAT', shape: ['batch', 2] },
        { name: 'label', elemType: 'INT64', shape: ['batch'] },
      ],
      initializers: [
        {
          name: 'W',
          elemType: 'FLOAT',
          dims: [FEATURES.length, 2],
          data: Float32Array.from(model.weights.flat()),
        },
        { name: 'b', elemType: 'FLOAT', dims: [2], data: Float32Array.from(model.bias) },
      ],
      nodes: [
        { opType: 'Gemm', inputs: ['features', 'W', 'b'], outputs: ['logits'], name: 'gemm' },
        {
          opType: 'Softmax',
          inputs: ['logits'],
          outputs: ['probabilities'],
          name: 'softmax',
          attributes: { axis: { int: 1 } },
        },
        {
          opType: 'ArgMax',
          inputs: ['probabilities'],
          outputs: ['label'],
          name: 'argmax',
          attributes: { axis: { int: 1 }, keepdims: { int: 0 } },
        },
      ],
    },
  });
}

function featureStats(x: number[][]) {
  return Object.fromEntries(
    FEATURES.map((name, f) => {
      const values = x.map((row) => row[f] as number);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
      const min = Math.min(...values);
      const max = Math.max(...values);
      const edges = Array.from({ length: 11 }, (_, i) => round(min + ((max - min) * i) / 10));
      const counts = new Array(10).fill(0);
      for (const v of values) counts[Math.min(9, Math.floor(((v - min) / (max - min || 1)) * 10))]++;
      return [
        name,
        {
          count: values.length,
          mean: round(mean),
          std: round(std),
          min: round(min),
          max: round(max),
          histogram: { edges, counts },
        },
      ];
    }),
  );
}

/** Trains and writes every artefact into `outDir`. Returns the metrics. */
export async function train(outDir: string, params: TrainParams = DEFAULT_PARAMS) {
  const { x, y } = makeDataset(params);
  const split = Math.floor(x.length * 0.8);
  const model = fitModel(x.slice(0, split), y.slice(0, split), params);
  const metrics = evaluate(model, x.slice(split), y.slice(split));
  const sample = [x[split] as number[], x[split + 1] as number[]];
  const probabilities = sample.flatMap((row) => predict(model, row));
  const example = {
    request: {
      inputs: [
        {
          name: 'features',
          datatype: 'FP32',
          shape: [2, FEATURES.length],
          data: sample.map((r) => r.map(Math.fround)),
        },
      ],
    },
    outputs: [
      { name: 'probabilities', datatype: 'FP32', shape: [2, 2], data: probabilities },
      {
        name: 'label',
        datatype: 'INT64',
        shape: [2],
        data: sample.map((row) => (predict(model, row)[1] >= 0.5 ? 1 : 0)),
      },
    ],
    tolerance: { absolute: 1e-4, relative: 1e-3 },
  };
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'model.onnx'), toOnnx(model));
  const json = (name: string, value: unknown) =>
    writeFile(join(outDir, name), `${JSON.stringify(value, null, 2)}\n`);
  await json('metrics.json', metrics);
  await json('params.json', params);
  await json('example.json', example);
  await json('labels.json', LABELS);
  await json('stats.json', featureStats(x.slice(0, split)));
  return metrics;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = process.env.MAAP_OUTPUT_DIR ?? 'out';
  const metrics = await train(out);
  console.log(
    `trained fraud logistic regression: accuracy ${metrics.accuracy}, auc ${metrics.auc} → ${out}/model.onnx`,
  );
}
