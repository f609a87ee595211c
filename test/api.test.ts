/**
 * The public API: option checks, dispose, asynchrony, loading, determinism and cache reuse,
 * and the memory report. Every context uses threads: 2 and a small contextSize; every test
 * disposes what it creates.
 */
import * as fs from 'fs';
import * as os from 'os';

import {
  Context,
  ContextFullError,
  ContextOptions,
  DisposedError,
  InvalidOptionError,
  Model,
  OutOfMemoryError,
  loadModel,
} from '../lib';
import { fixtureModel, fixturesDir } from './helpers/deepseekFixture';
import { expectRejection, expectThrow, rejection } from './helpers/errors';

// v3-split.f32: f32 weights, so modes agree closely; vocab 512 (DESIGN.md fixtures).
const modelPath = fixtureModel('v3-split.f32.gguf');
const nVocab = 512;
const contextSize = 256;
const threads = 2;

/** The largest fixture: the longest load and the slowest batch. */
function largestFixture(): string {
  const dir = `${fixturesDir}/models`;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.gguf')).map((f) => `${dir}/${f}`);
  return files.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]!;
}

/** Deterministic token ids in 0..nVocab-1 (an LCG, seed 12345: any fixed seed will do). */
function tokens(count: number, seed = 12345): number[] {
  const out: number[] = [];
  let state = seed;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    out.push((state >>> 8) % nVocab);
  }
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

function expectFinite(logits: Float32Array, length: number): void {
  expect(logits).toHaveLength(length);
  expect(logits.every((v) => Number.isFinite(v))).toBe(true);
}

/** Runs `body` with a context on `model`, disposing it afterwards. */
async function withContext<T>(model: Model, options: ContextOptions, body: (context: Context) => Promise<T>): Promise<T> {
  const context = await model.createContext({ contextSize, threads, ...options });
  try {
    return await body(context);
  } finally {
    await context.dispose();
  }
}

/** Counts setImmediate turns of the event loop until the returned stop() is called. */
function countTicks(): () => number {
  let ticks = 0;
  let running = true;
  const tick = (): void => {
    ticks++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  return () => {
    running = false;
    return ticks;
  };
}

let model: Model;
beforeAll(async () => {
  model = await loadModel(modelPath);
  expect(model.config.nVocab).toBe(nVocab);
});
afterAll(() => model?.dispose());

describe('options', () => {
  const invalid: [string, ContextOptions][] = [
    ['mla 4', { mla: 4 as never }],
    ["flashAttention 'yes'", { flashAttention: 'yes' as never }],
    ["cacheType 'q4_0'", { cacheType: 'q4_0' as never }],
    ["vCacheType 'q4_0'", { vCacheType: 'q4_0' as never }],
    ['contextSize 0', { contextSize: 0 }],
    ['contextSize 1.5', { contextSize: 1.5 }],
    ['contextSize 2^24 + 1', { contextSize: (1 << 24) + 1 }],
    ['threads 0', { threads: 0 }],
    ['batchSize 0', { batchSize: 0 }],
    ['amb -1', { amb: -1 }],
    ['amb NaN', { amb: NaN }],
    ["mla 1, flashAttention false, vCacheType 'q8_0' (the V^T cache)", { mla: 1, flashAttention: false, vCacheType: 'q8_0' }],
  ];
  it.each(invalid)('createContext: %s -> INVALID_OPTION', async (_name, options) => {
    await expectRejection(model.createContext({ contextSize, threads, ...options }), InvalidOptionError, 'INVALID_OPTION');
  });

  it('createContext: a KV cache larger than the machine -> OUT_OF_MEMORY', async () => {
    // mla 0 keeps per-head K (192) and V (128) in f16: 2^24 tokens need far more than this machine.
    const bytes = model.config.nLayer * (1 << 24) * model.config.nHead * (192 + 128) * 2;
    expect(bytes).toBeGreaterThan(os.totalmem());
    await expectRejection(model.createContext({ contextSize: 1 << 24, mla: 0, threads }), OutOfMemoryError, 'OUT_OF_MEMORY');
  });

  describe('evaluate', () => {
    let context: Context;
    beforeAll(async () => {
      context = await model.createContext({ contextSize, threads, mla: 2 });
    });
    afterAll(() => context?.dispose());

    it.each([
      ['token -1', [-1]],
      [`token ${nVocab} (one past the vocab)`, [1, nVocab]],
      ['token 1.5', [1.5]],
      ['token NaN', [NaN]],
      ['no tokens', []],
    ])('%s -> INVALID_OPTION, nothing cached', async (_name, ids) => {
      await expectRejection(context.evaluate(ids), InvalidOptionError, 'INVALID_OPTION');
      expect(context.nPast).toBe(0);
    });

    it("logits 'first' -> INVALID_OPTION", async () => {
      await expectRejection(context.evaluate([1], { logits: 'first' as never }), InvalidOptionError, 'INVALID_OPTION');
      expect(context.nPast).toBe(0);
    });

    it.each([
      ['one float short', () => new Float32Array(nVocab - 1), 'last'],
      ['a row for all of 2 tokens', () => new Float32Array(nVocab), 'all'],
      ['a Float64Array', () => new Float64Array(nVocab), 'last'],
      ['an array', () => new Array<number>(nVocab).fill(0), 'last'],
    ] as const)('output %s -> INVALID_OPTION, nothing cached', async (_name, make, logits) => {
      const output = make() as unknown as Float32Array;
      await expectRejection(context.evaluate([1, 2], { logits, output }), InvalidOptionError, 'INVALID_OPTION');
      expect(context.nPast).toBe(0);
    });
  });

  it('a prompt longer than the context -> CONTEXT_FULL, and the context stays usable', async () => {
    const prompt = tokens(20);
    await withContext(model, { mla: 2 }, async (context) => {
      await context.evaluate(prompt.slice(0, 10));
      await expectRejection(context.evaluate(tokens(contextSize - 5, 7)), ContextFullError, 'CONTEXT_FULL');
      expect(context.nPast).toBe(10);
      const after = await context.evaluate(prompt.slice(10));
      expect(context.nPast).toBe(20);
      expectFinite(after, nVocab);
      // The rejected call left no trace: same logits as a context that never saw it.
      const fresh = await withContext(model, { mla: 2 }, async (other) => {
        await other.evaluate(prompt.slice(0, 10));
        return other.evaluate(prompt.slice(10));
      });
      expect(maxAbsDiff(after, fresh)).toBeLessThan(1e-4);
    });
  });

  it('a prompt of exactly contextSize tokens fits, one more token does not', async () => {
    await withContext(model, { mla: 2, contextSize: 64 }, async (context) => {
      expectFinite(await context.evaluate(tokens(64)), nVocab);
      expect(context.nPast).toBe(64);
      await expectRejection(context.evaluate([1]), ContextFullError, 'CONTEXT_FULL');
      expect(context.nPast).toBe(64);
    });
  });
});

describe('dispose', () => {
  it('a disposed model -> DISPOSED from createContext', async () => {
    const own = await loadModel(modelPath);
    own.dispose();
    expect(own.disposed).toBe(true);
    // mla 2 reads the file's split layout; mla 3 also derives the legacy one first.
    await expectRejection(own.createContext({ contextSize, threads, mla: 2 }), DisposedError, 'DISPOSED');
    await expectRejection(own.createContext({ contextSize, threads, mla: 3 }), DisposedError, 'DISPOSED');
  });

  it('a disposed context -> DISPOSED from evaluate, memory, memoryReport and reset', async () => {
    const context = await model.createContext({ contextSize, threads, mla: 2 });
    await context.dispose();
    expect(context.disposed).toBe(true);
    await expectRejection(context.evaluate([1, 2, 3]), DisposedError, 'DISPOSED');
    expectThrow(() => context.memory, DisposedError, 'DISPOSED');
    expectThrow(() => context.memoryReport(), DisposedError, 'DISPOSED');
    expectThrow(() => context.reset(), DisposedError, 'DISPOSED');
  });

  it('dispose twice is fine (model and context, in turn and at once)', async () => {
    const own = await loadModel(modelPath);
    const a = await own.createContext({ contextSize, threads, mla: 2 });
    const b = await own.createContext({ contextSize, threads, mla: 2 });
    await a.dispose();
    await a.dispose();
    await Promise.all([b.dispose(), b.dispose()]);
    own.dispose();
    own.dispose();
    await own[Symbol.asyncDispose]();
    expect([a.disposed, b.disposed, own.disposed]).toEqual([true, true, true]);
  });

  it.each([2, 3] as const)('a context keeps working after its model is disposed (mla %d)', async (mla) => {
    const own = await loadModel(modelPath);
    const context = await own.createContext({ contextSize, threads, mla });
    try {
      own.dispose();
      const first = await context.evaluate([1, 2, 3]);
      expectFinite(first, nVocab);
      // A batch size not seen before compiles a new graph against the context's weights.
      const all = await context.evaluate(tokens(5), { logits: 'all' });
      expectFinite(all, 5 * nVocab);
      const expected = await withContext(model, { mla }, async (other) => {
        await other.evaluate([1, 2, 3]);
        return other.evaluate(tokens(5), { logits: 'all' });
      });
      expect(maxAbsDiff(all, expected)).toBeLessThan(1e-4);
    } finally {
      await context.dispose();
      own.dispose();
    }
  });

  it('dispose while an evaluate is pending waits for it', async () => {
    const context = await model.createContext({ contextSize, threads, mla: 0, flashAttention: false });
    const order: string[] = [];
    const pending = context.evaluate(tokens(64), { logits: 'all' }).then((logits) => {
      order.push('evaluate');
      return logits;
    });
    const disposed = context.dispose().then(() => order.push('dispose'));
    await Promise.all([pending, disposed]);
    expect(order).toEqual(['evaluate', 'dispose']);
    expectFinite(await pending, 64 * nVocab);
    expect(context.disposed).toBe(true);
  });
});

describe('asynchrony', () => {
  const largest = largestFixture();

  it('the event loop keeps turning while a model loads', async () => {
    const stop = countTicks();
    const loaded = await loadModel(largest);
    const ticks = stop();
    loaded.dispose();
    expect(ticks).toBeGreaterThan(0);
  });

  it('the event loop keeps turning while a batch runs', async () => {
    const loaded = await loadModel(largest);
    try {
      await withContext(loaded, { mla: 0, flashAttention: false }, async (context) => {
        const batch = tokens(64);
        const stop = countTicks();
        const logits = await context.evaluate(batch);
        const ticks = stop();
        expectFinite(logits, loaded.config.nVocab);
        expect(ticks).toBeGreaterThan(0);
      });
    } finally {
      loaded.dispose();
    }
  });
});

describe('loading', () => {
  it('onProgress: fractions in [0, 1], non-decreasing, ending at 1', async () => {
    const fractions: number[] = [];
    const loaded = await loadModel(modelPath, { onProgress: (f) => fractions.push(f) });
    loaded.dispose();
    expect(fractions.length).toBeGreaterThan(0);
    for (const f of fractions) {
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThanOrEqual(1);
    }
    for (let i = 1; i < fractions.length; i++) expect(fractions[i]).toBeGreaterThanOrEqual(fractions[i - 1]!);
    expect(fractions[fractions.length - 1]).toBe(1);
  });

  it('mmap false: the file read into native memory gives the same logits, with progress ending at 1', async () => {
    const fractions: number[] = [];
    const resident = await loadModel(modelPath, { mmap: false, onProgress: (f) => fractions.push(f) });
    try {
      expect(fractions[fractions.length - 1]).toBe(1);
      for (let i = 1; i < fractions.length; i++) expect(fractions[i]).toBeGreaterThanOrEqual(fractions[i - 1]!);
      const prompt = tokens(12);
      const want = await withContext(model, { mla: 3 }, (c) => c.evaluate(prompt, { logits: 'all' }));
      const got = await withContext(resident, { mla: 3 }, (c) => c.evaluate(prompt, { logits: 'all' }));
      expect(got).toEqual(want);
    } finally {
      resident.dispose();
    }
  });

  it('mmap must be a boolean', async () => {
    await expectRejection(loadModel(modelPath, { mmap: 'no' as unknown as boolean }), InvalidOptionError, 'INVALID_OPTION');
  });

  it('mmap false: aborting while reading rejects with signal.reason', async () => {
    const controller = new AbortController();
    const reason = new Error('stop reading');
    const pending = loadModel(modelPath, { mmap: false, signal: controller.signal });
    controller.abort(reason);
    expect(await rejection(pending)).toBe(reason);
  });

  it('an already-aborted signal rejects with signal.reason', async () => {
    const controller = new AbortController();
    const reason = new Error('stop loading');
    controller.abort(reason);
    const error = await rejection(loadModel(modelPath, { signal: controller.signal }));
    expect(error).toBe(reason);
  });

  it('aborting while loading rejects with signal.reason', async () => {
    const controller = new AbortController();
    const reason = new Error('stop loading');
    const pending = loadModel(modelPath, { signal: controller.signal });
    // loadModel has only started reading the header: it checks the signal again after it.
    controller.abort(reason);
    expect(await rejection(pending)).toBe(reason);
  });

  it('evaluate with an already-aborted signal rejects with signal.reason and caches nothing', async () => {
    const controller = new AbortController();
    const reason = new Error('stop evaluating');
    controller.abort(reason);
    await withContext(model, { mla: 2 }, async (context) => {
      expect(await rejection(context.evaluate([1, 2, 3], { signal: controller.signal }))).toBe(reason);
      expect(context.nPast).toBe(0);
      expectFinite(await context.evaluate([1, 2, 3]), nVocab);
    });
  });

  it('onProgress that is not a function -> INVALID_OPTION', async () => {
    await expectRejection(loadModel(modelPath, { onProgress: 1 as never }), InvalidOptionError, 'INVALID_OPTION');
  });
});

describe('determinism and cache reuse', () => {
  const modes: ContextOptions[] = [
    { mla: 0, flashAttention: false },
    { mla: 0, flashAttention: true },
    { mla: 1, flashAttention: false },
    { mla: 2, flashAttention: true },
    { mla: 2, flashAttention: false },
    { mla: 3, flashAttention: true },
  ];
  const prompt = tokens(20);
  const name = (m: ContextOptions): string => `mla ${m.mla}, flashAttention ${m.flashAttention}`;

  it.each(modes.map((m) => [name(m), m] as const))('%s: one call equals two calls; reset() repeats exactly', async (_name, mode) => {
    await withContext(model, mode, async (context) => {
      const whole = await context.evaluate(prompt, { logits: 'all' });
      expectFinite(whole, prompt.length * nVocab);

      context.reset();
      expect(context.nPast).toBe(0);
      const again = await context.evaluate(prompt, { logits: 'all' });
      expect(again).toEqual(whole);

      context.reset();
      const head = await context.evaluate(prompt.slice(0, 12), { logits: 'all' });
      const tail = await context.evaluate(prompt.slice(12), { logits: 'all' });
      expect(context.nPast).toBe(prompt.length);
      const split = new Float32Array(whole.length);
      split.set(head);
      split.set(tail, head.length);
      // Bit for bit: every op computes a token's row in an order that does not depend on
      // how many tokens share its micro-batch.
      expect(split).toEqual(whole);
    });
  });

  it.each(modes.map((m) => [name(m), m] as const))("%s: logits 'last' equal the last row of 'all'", async (_name, mode) => {
    await withContext(model, mode, async (context) => {
      const all = await context.evaluate(prompt, { logits: 'all' });
      context.reset();
      const last = await context.evaluate(prompt, { logits: 'last' });
      expectFinite(last, nVocab);
      expect(maxAbsDiff(last, all.subarray(all.length - nVocab))).toBeLessThan(1e-5);
    });
  });

  it('output: the logits land in the given array, the same as in a new one (last and all, over micro-batches)', async () => {
    await withContext(model, { mla: 2, batchSize: 7 }, async (context) => {
      const fresh = await context.evaluate(prompt, { logits: 'all' });
      context.reset();
      const all = new Float32Array(prompt.length * nVocab).fill(NaN);
      expect(await context.evaluate(prompt, { logits: 'all', output: all })).toBe(all);
      expect(maxAbsDiff(all, fresh)).toBe(0);
      context.reset();
      const last = new Float32Array(nVocab).fill(NaN);
      expect(await context.evaluate(prompt, { output: last })).toBe(last);
      expect(maxAbsDiff(last, fresh.subarray(fresh.length - nVocab))).toBe(0);
      // A view into a larger buffer: only its own range is written.
      const backing = new Float32Array(3 * nVocab).fill(7);
      const view = backing.subarray(nVocab, 2 * nVocab);
      await context.evaluate([5], { output: view });
      expectFinite(view, nVocab);
      expect(backing.subarray(0, nVocab).every((v) => v === 7)).toBe(true);
      expect(backing.subarray(2 * nVocab).every((v) => v === 7)).toBe(true);
    });
  });

  it('micro-batches: batchSize 7 gives the logits of one batch', async () => {
    const whole = await withContext(model, { mla: 2 }, (c) => c.evaluate(prompt, { logits: 'all' }));
    const batched = await withContext(model, { mla: 2, batchSize: 7 }, (c) => c.evaluate(prompt, { logits: 'all' }));
    expect(maxAbsDiff(batched, whole)).toBeLessThan(1e-4);
  });
});

describe('memory', () => {
  it('mla 2, f16: nLayer x contextSize x (kvLoraRank 512 + ropeDim 64) x 2 bytes', async () => {
    const c = model.config;
    expect([c.kvLoraRank, c.ropeDim]).toEqual([512, 64]);
    await withContext(model, { mla: 2, cacheType: 'f16' }, async (context) => {
      const m = context.memory;
      expect(m.kvCacheBytes).toBe(c.nLayer * contextSize * 576 * 2);
      expect(m.kvCacheByRole).toEqual([{ role: 'c^KV', type: 'f16', bytes: c.nLayer * contextSize * 576 * 2 }]);
      expect(m.computeBufferBytes).toBeGreaterThan(0);
    });
  });

  it('mla 0, f16: per head K (nope 128 + rope 64) and V (128)', async () => {
    const c = model.config;
    expect([c.nopeDim, c.ropeDim, c.vHeadDim]).toEqual([128, 64, 128]);
    await withContext(model, { mla: 0 }, async (context) => {
      const m = context.memory;
      const k = c.nLayer * contextSize * c.nHead * 192 * 2;
      const v = c.nLayer * contextSize * c.nHead * 128 * 2;
      expect(m.kvCacheBytes).toBe(k + v);
      expect(m.kvCacheByRole).toEqual([
        { role: 'K', type: 'f16', bytes: k },
        { role: 'V', type: 'f16', bytes: v },
      ]);
    });
  });

  it('mla 1 without flash attention keeps a kv^T cache of kvLoraRank x contextSize', async () => {
    const c = model.config;
    await withContext(model, { mla: 1, flashAttention: false }, async (context) => {
      const m = context.memory;
      const kvT = c.nLayer * c.kvLoraRank * contextSize * 2;
      expect(m.kvCacheByRole.find((r) => r.role === 'kv^T')?.bytes).toBe(kvT);
      expect(m.kvCacheBytes).toBe(c.nLayer * contextSize * 576 * 2 + kvT);
      expect(context.memoryReport()).not.toContain('kv^T: not used');
    });
  });

  it("memoryReport() says 'kv^T: not used' for mla 2", async () => {
    await withContext(model, { mla: 2 }, async (context) => {
      expect(context.memoryReport()).toContain('kv^T: not used');
    });
  });

  // prepare() compiles the largest batch and the 1-token graph so the report is the real one.
  const growthModes: [string, ContextOptions][] = [
    ['mla 0, flashAttention false', { mla: 0, flashAttention: false }],
    ['mla 1, flashAttention false', { mla: 1, flashAttention: false }],
    ['mla 2, flashAttention true', { mla: 2, flashAttention: true }],
    ['mla 3, flashAttention false', { mla: 3, flashAttention: false }],
  ];
  async function bufferGrowth(options: ContextOptions): Promise<number[]> {
    return withContext(model, options, async (context) => {
      const seen = [context.memory.computeBufferBytes];
      // 127 tokens: the largest batch mla 3 still runs absorbed (mla3DecompressMinTokens - 1).
      for (const n of [1, 3, 127, 128, 100]) {
        if (context.nPast + n > contextSize) context.reset();
        await context.evaluate(tokens(n));
        seen.push(context.memory.computeBufferBytes);
      }
      return seen;
    });
  }
  it.each(growthModes)('%s: the compute buffer reported at creation is the worst case', async (_name, options) => {
    const seen = await bufferGrowth(options);
    expect(seen).toEqual(seen.map(() => seen[0]));
  });
  // mla 3 runs 127-token batches absorbed, with a larger workspace than its decompressed
  // batches: prepare() compiles that graph too.
  it('mla 3, flashAttention true: the compute buffer reported at creation is the worst case', async () => {
    const seen = await bufferGrowth({ mla: 3, flashAttention: true });
    expect(seen).toEqual(seen.map(() => seen[0]));
  });

  it.each([0, 1, 2, 3] as const)('mla %d without flash attention: amb 0.25 needs a smaller compute buffer than amb 0', async (mla) => {
    // 256-token batches over a 1024-token cache: K*Q is 256 x 1024 x 4 heads x f32 = 4 MiB, the
    // largest scratch of the graph, and amb 0.25 MiB computes it one head at a time. (With
    // contextSize 256, mla 1 and 2 peak in attn_v_b's 2 MiB input instead, and amb changes nothing.)
    const options: ContextOptions = { mla, flashAttention: false, contextSize: 1024, batchSize: 256 };
    const unlimited = await withContext(model, { ...options, amb: 0 }, async (c) => c.memory.computeBufferBytes);
    const limited = await withContext(model, { ...options, amb: 0.25 }, async (c) => c.memory.computeBufferBytes);
    expect(limited).toBeLessThan(unlimited);
  });
});
