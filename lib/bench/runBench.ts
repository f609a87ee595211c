/**
 * llama-bench's tests on a loaded model (DESIGN.md "Performance yardstick"):
 * - ppN: N random tokens evaluated from an empty cache in micro-batches; t/s = N / seconds.
 * - tgN: N tokens evaluated one at a time from an empty cache (llama-bench's tg128).
 * - ppN@ppD, tgN@ppD: the same after D tokens were put in the cache (not timed): TG as a
 *   function of the tokens already cached (seed 004's tables; ik_llama.cpp's -gp).
 * Each test runs once untimed (graphs compiled, weights paged in), then `reps` times;
 * t/s is the mean ± sample standard deviation over the reps, as llama-bench reports it.
 */
import type { Context } from '../api/Context';
import type { Model } from '../api/Model';
import { defaultThreads } from '../api/Model';
import { invalidOption } from '../errors';
import { CacheType, MlaMode } from '../model/attentionMode';

export interface BenchOptions {
  /** Prompt lengths; 0 entries are skipped. Default [512]. */
  pp?: number[];
  /** Generated-token counts; 0 entries are skipped. Default [128]. */
  tg?: number[];
  /** Tokens in the cache before each test. Default [0]. */
  depth?: number[];
  /** Timed repetitions per test. Default 3. */
  reps?: number;
  /** Default 3. */
  mla?: MlaMode;
  /** Default true. */
  flashAttention?: boolean;
  /** K cache type. Default 'f16'. */
  cacheType?: CacheType;
  /** Default: available cores. */
  threads?: number;
  /** Tokens per micro-batch. Default 512. */
  batchSize?: number;
  /**
   * Tokens the KV cache holds (the memory report is at this size). Default: the largest
   * depth + the largest test + 16.
   */
  contextSize?: number;
  /** Seed of the random tokens. Default 42. */
  seed?: number;
  /** Called before each test starts (for progress output). */
  onTest?: (test: string) => void;
}

export interface BenchRow {
  /** 'pp512', 'tg128', 'tg128@pp4096'. */
  test: string;
  kind: 'pp' | 'tg';
  /** Tokens timed. */
  nTokens: number;
  /** Tokens cached before the timed ones. */
  depth: number;
  tokensPerSecond: { mean: number; stddev: number; samples: number[] };
  mla: MlaMode;
  fa: boolean;
  ctk: CacheType;
  threads: number;
  ubatch: number;
  contextSize: number;
  kvCacheBytes: number;
  computeBufferBytes: number;
}

export interface BenchModelInfo {
  name: string;
  /** Bytes of tensor data. */
  sizeBytes: number;
  /** Number of weights. */
  params: number;
  /** The type holding most of the weight bytes ('q8_0', ...). */
  mainType: string;
  nLayer: number;
}

export interface BenchReport {
  model: BenchModelInfo;
  rows: BenchRow[];
  /** context.memoryReport() at the bench's contextSize. */
  memoryReport: string;
}

/** Model facts for the table, from its tensor list. */
export function benchModelInfo(model: Model): BenchModelInfo {
  let sizeBytes = 0;
  let params = 0;
  const bytesByType = new Map<string, number>();
  for (const t of model.info.tensors) {
    sizeBytes += t.nbytes;
    params += t.shape.reduce((a, b) => a * b, 1);
    bytesByType.set(t.type, (bytesByType.get(t.type) ?? 0) + t.nbytes);
  }
  const mainType = [...bytesByType].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '';
  return { name: model.config.name, sizeBytes, params, mainType, nLayer: model.config.nLayer };
}

/** Random token ids in 0..nVocab-1 (an LCG; the ids only need to vary). */
function randomTokens(count: number, nVocab: number, state: { seed: number }): number[] {
  const out: number[] = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    state.seed = (Math.imul(state.seed, 1103515245) + 12345) >>> 0;
    out[i] = (state.seed >>> 8) % nVocab;
  }
  return out;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Sample standard deviation (n - 1), 0 for a single sample, as llama-bench computes it. */
function stddev(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

function checkList(name: string, values: number[], min: number): void {
  if (!Array.isArray(values) || values.length === 0 || !values.every((v) => Number.isSafeInteger(v) && v >= min)) {
    throw invalidOption(name, `a non-empty list of integers >= ${min}`, values);
  }
}

interface Test {
  kind: 'pp' | 'tg';
  nTokens: number;
  depth: number;
}

/** Fills the cache with `depth` tokens, untimed. */
async function fill(context: Context, depth: number, nVocab: number, state: { seed: number }): Promise<void> {
  context.reset();
  if (depth > 0) await context.evaluate(randomTokens(depth, nVocab, state));
}

/** Seconds of one run of `test` after the cache was filled to its depth. */
async function timeTest(context: Context, test: Test, nVocab: number, state: { seed: number }, warmUp: boolean): Promise<number> {
  await fill(context, test.depth, nVocab, state);
  if (test.kind === 'pp') {
    const prompt = randomTokens(test.nTokens, nVocab, state);
    const started = performance.now();
    await context.evaluate(prompt);
    return (performance.now() - started) / 1000;
  }
  // llama-bench warms generation up with a single token. One logits array for the run,
  // as generate() does.
  const tokens = randomTokens(warmUp ? 1 : test.nTokens, nVocab, state);
  const output = new Float32Array(nVocab);
  const started = performance.now();
  for (const token of tokens) await context.evaluate([token], { output });
  return (performance.now() - started) / 1000;
}

export function testName(test: Test): string {
  return `${test.kind}${test.nTokens}${test.depth > 0 ? `@pp${test.depth}` : ''}`;
}

/** Runs every (depth × test) on one context and reports t/s per test. */
export async function runBench(model: Model, options: BenchOptions = {}): Promise<BenchReport> {
  const pp = options.pp ?? [512];
  const tg = options.tg ?? [128];
  const depths = options.depth ?? [0];
  const reps = options.reps ?? 3;
  checkList('pp', pp, 0);
  checkList('tg', tg, 0);
  checkList('depth', depths, 0);
  if (!Number.isSafeInteger(reps) || reps < 1) throw invalidOption('reps', 'an integer >= 1', reps);
  const tests: Test[] = [];
  for (const depth of depths) {
    for (const n of pp) if (n > 0) tests.push({ kind: 'pp', nTokens: n, depth });
    for (const n of tg) if (n > 0) tests.push({ kind: 'tg', nTokens: n, depth });
  }
  if (tests.length === 0) throw invalidOption('pp/tg', 'at least one test with a positive token count', { pp, tg });

  // Room for the deepest test; a small margin as llama-bench's n_ctx = n_prompt + n_gen + depth.
  const needed = Math.max(...tests.map((t) => t.depth + t.nTokens));
  const contextSize = options.contextSize ?? needed + 16;
  if (!Number.isSafeInteger(contextSize) || contextSize < needed) {
    throw invalidOption('contextSize', `an integer >= ${needed} (the largest depth + test)`, contextSize);
  }
  const mla = options.mla ?? 3;
  const fa = options.flashAttention ?? true;
  const ctk = options.cacheType ?? 'f16';
  const threads = options.threads ?? defaultThreads();
  const ubatch = options.batchSize ?? 512;
  const context = await model.createContext({ contextSize, mla, flashAttention: fa, cacheType: ctk, threads, batchSize: ubatch });
  try {
    const memory = context.memory;
    const nVocab = model.config.nVocab;
    const state = { seed: options.seed ?? 42 };
    const rows: BenchRow[] = [];
    for (const test of tests) {
      const name = testName(test);
      options.onTest?.(name);
      await timeTest(context, test, nVocab, state, true);
      const samples: number[] = [];
      for (let r = 0; r < reps; r++) samples.push(test.nTokens / (await timeTest(context, test, nVocab, state, false)));
      rows.push({
        test: name,
        kind: test.kind,
        nTokens: test.nTokens,
        depth: test.depth,
        tokensPerSecond: { mean: mean(samples), stddev: stddev(samples), samples },
        mla,
        fa,
        ctk,
        threads,
        ubatch,
        contextSize,
        kvCacheBytes: memory.kvCacheBytes,
        computeBufferBytes: memory.computeBufferBytes,
      });
    }
    return { model: benchModelInfo(model), rows, memoryReport: context.memoryReport() };
  } finally {
    await context.dispose();
  }
}

/** A markdown table like llama-bench's. */
export function formatBenchTable(report: BenchReport): string {
  const m = report.model;
  const header = ['model', 'size', 'params', 'threads', 'type_k', 'fa', 'mla', 'n_ubatch', 'test', 't/s'];
  const right = new Set(['size', 'params', 'threads', 'n_ubatch', 'test', 't/s']);
  const model = `deepseek2 ${m.nLayer}L ${m.mainType.toUpperCase()}`;
  const size = `${(m.sizeBytes / 2 ** 30).toFixed(2)} GiB`;
  const params = `${(m.params / 1e9).toFixed(2)} B`;
  const lines = report.rows.map((r) => [
    model, size, params, String(r.threads), r.ctk, r.fa ? '1' : '0', String(r.mla), String(r.ubatch), r.test,
    `${r.tokensPerSecond.mean.toFixed(2)} ± ${r.tokensPerSecond.stddev.toFixed(2)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const cell = (text: string, i: number): string => (right.has(header[i]!) ? text.padStart(widths[i]!) : text.padEnd(widths[i]!));
  const row = (cells: string[]): string => `| ${cells.map(cell).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (right.has(header[i]!) ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [row(header), rule, ...lines.map(row)].join('\n');
}
