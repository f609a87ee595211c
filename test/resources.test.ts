/**
 * Resource safety (issue 7): the same model loaded twice, a model disposed while its
 * context generates, many contexts at once, a context too large for memory, and no
 * growth of RSS, mappings or threads over 1000 context create/dispose cycles.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { DisposedError, InvalidOptionError, OutOfMemoryError } from '../lib/errors';
import { Model, loadModel } from '../lib';
import { fixtureModel } from './helpers/deepseekFixture';
import { rejection } from './helpers/errors';

// The smallest fixture (2.4 MB, V3 split layout, Q6_0 weights).
const modelPath = fixtureModel('v3-split.q6_0.gguf');
// A few prompt tokens; the fixture's vocabulary has 512 entries.
const prompt = [1, 17, 42, 99, 3];
// One thread and small contexts keep this suite fast on two busy cores.
const small = { contextSize: 64, threads: 1, batchSize: 8 } as const;

/** Logits of the last prompt token from a fresh context. */
async function lastLogits(model: Model): Promise<Float32Array> {
  const context = await model.createContext(small);
  try {
    return await context.evaluate(prompt);
  } finally {
    await context.dispose();
  }
}

function procStatus(field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) : NaN;
}
const mappings = (): number => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').length;

test('the same model loaded twice gives two independent models', async () => {
  const a = await loadModel(modelPath);
  const b = await loadModel(modelPath);
  try {
    const la = await lastLogits(a);
    const lb = await lastLogits(b);
    expect(Array.from(lb)).toEqual(Array.from(la));
    a.dispose();
    expect(a.disposed).toBe(true);
    // The second mapping is not affected by the first's release.
    expect(Array.from(await lastLogits(b))).toEqual(Array.from(la));
    await expect(a.createContext(small)).rejects.toBeInstanceOf(DisposedError);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('disposing a model while its context generates lets the generation finish', async () => {
  const model = await loadModel(modelPath);
  const reference = await (async () => {
    const context = await model.createContext(small);
    try {
      return await context.generateText(prompt, { maxTokens: 12, temperature: 0 });
    } finally {
      await context.dispose();
    }
  })();
  const context = await model.createContext(small);
  try {
    const running = context.generateText(prompt, { maxTokens: 12, temperature: 0 });
    model.dispose(); // the context keeps the weights mapped until it is disposed
    const result = await running;
    expect(result.tokens).toEqual(reference.tokens);
    await expect(model.createContext(small)).rejects.toBeInstanceOf(DisposedError);
    // The context still works after its model's dispose(), and dispose() is idempotent.
    model.dispose();
    context.reset();
    expect((await context.evaluate(prompt)).length).toBe(model.config.nVocab);
  } finally {
    await context.dispose();
  }
  await expect(context.evaluate(prompt)).rejects.toBeInstanceOf(DisposedError);
});

test('disposing a context while it evaluates waits for the evaluation, then refuses more', async () => {
  const model = await loadModel(modelPath);
  try {
    const context = await model.createContext(small);
    const running = context.evaluate(prompt);
    const disposed = context.dispose();
    expect((await running).length).toBe(model.config.nVocab);
    await disposed;
    expect(context.disposed).toBe(true);
    await expect(context.evaluate(prompt)).rejects.toBeInstanceOf(DisposedError);
    await context.dispose();
  } finally {
    model.dispose();
  }
});

test('many contexts at once on one model evaluate concurrently and agree', async () => {
  const model = await loadModel(modelPath);
  try {
    const expected = Array.from(await lastLogits(model));
    const contexts = await Promise.all(Array.from({ length: 16 }, () => model.createContext(small)));
    try {
      const results = await Promise.all(contexts.map((c) => c.evaluate(prompt)));
      for (const r of results) expect(Array.from(r)).toEqual(expected);
    } finally {
      await Promise.all(contexts.map((c) => c.dispose()));
    }
  } finally {
    model.dispose();
  }
});

test('a context too large for memory is refused with OutOfMemoryError; the model stays usable', async () => {
  const model = await loadModel(modelPath);
  try {
    // 2^24 tokens, the option's maximum: 54 GiB of f16 MLA cache for this fixture's 3 layers,
    // more than any machine this runs on (24 GiB here).
    const error = await rejection(model.createContext({ ...small, contextSize: 1 << 24, cacheType: 'f16' }));
    expect(error).toBeInstanceOf(OutOfMemoryError);
    expect((error as OutOfMemoryError).code).toBe('OUT_OF_MEMORY');
    const tooMany = await rejection(model.createContext({ ...small, contextSize: (1 << 24) + 1 }));
    expect(tooMany).toBeInstanceOf(InvalidOptionError);
    expect((await lastLogits(model)).length).toBe(model.config.nVocab);
  } finally {
    model.dispose();
  }
});

test('1000 context create/evaluate/dispose cycles: RSS, mappings and threads stay flat', () => {
  // In a fresh process (the built package): after the rest of the suite, this process's
  // RSS moves by tens of MiB with V8's and the allocator's own state, whatever deepmla does.
  const script = `
    const fs = require('fs');
    const { loadModel } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
    const status = (f) => Number(fs.readFileSync('/proc/self/status', 'utf8').split('\\n').find((l) => l.startsWith(f + ':')).split(':')[1].trim());
    const sample = () => ({ rss: process.memoryUsage().rss, maps: fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').length, threads: status('Threads') });
    (async () => {
      const model = await loadModel(${JSON.stringify(modelPath)});
      const cycle = async (i) => {
        const context = await model.createContext({ contextSize: 16, threads: 1, batchSize: 1 });
        await context.evaluate([i % model.config.nVocab]);
        await context.dispose();
      };
      // Warm-up: V8 heap, the allocator's arenas and lazily compiled code settle first.
      for (let i = 0; i < 100; i++) await cycle(i);
      const before = sample();
      for (let i = 0; i < 1000; i++) await cycle(i);
      const after = sample();
      model.dispose();
      process.stdout.write(JSON.stringify({ before, after }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  expect(child.stderr).toBe('');
  expect(child.status).toBe(0);
  const { before, after } = JSON.parse(child.stdout) as Record<'before' | 'after', { rss: number; maps: number; threads: number }>;
  // Generous: one leaked context (KV cache, arena, thread pool) per cycle would be far
  // more than 64 MiB of RSS, 1000 mappings and 1000 threads.
  expect(after.rss - before.rss).toBeLessThan(64 * 1048576);
  expect(after.maps - before.maps).toBeLessThan(50);
  expect(after.threads).toBeLessThanOrEqual(before.threads);
});
