/**
 * An evaluation context: a KV cache that lives across calls, compute buffers, and a
 * thread pool. `evaluate` runs tokens in micro-batches (one native call each, off the
 * main thread) and returns their logits.
 */
import * as os from 'os';

import { ContextFullError, DisposedError, OutOfMemoryError, callNative, callNativeSync, invalidOption } from '../errors';
import { GgufTensorType } from '../gguf';
import { ContextHandle, GraphHandle, native } from '../native';
import {
  AttentionMode,
  CacheSpec,
  CacheType,
  MlaMode,
  cacheBytes,
  cacheSpecs,
  checkAttentionMode,
  layoutsNeeded,
  mla3DecompressMinTokens,
} from '../model/attentionMode';
import { buildForward, ropeParams } from '../model/deepseek2';
import { ChatMessage, ChatOptions, ChatResult, chat } from './chat';
import { GenerateOptions, GenerateResult, generate, generateText } from './generate';
import type { Model } from './Model';
import { defaultThreads } from './Model';

export interface ContextOptions {
  /** Tokens the KV cache holds. Default: the model's context_length, at most 4096. */
  contextSize?: number;
  /** MLA mode 0-3 (DESIGN.md). Default 3: absorbed for generation, decompressed for prompts. */
  mla?: MlaMode;
  /** Fused flash attention (flash MLA for mla >= 1). Default true. */
  flashAttention?: boolean;
  /** K cache type. Default 'f16'. */
  cacheType?: CacheType;
  /** V cache type (mla 0; the V^T cache of mla 1 without flash attention). Default 'f16'. */
  vCacheType?: CacheType;
  /** Attention max batch in MiB for the non-flash K*Q buffer; 0 = no limit. Default 0. */
  amb?: number;
  /** Worker threads. Default: available cores. */
  threads?: number;
  /** Tokens per micro-batch. Default 512. */
  batchSize?: number;
  /**
   * With mla 3, micro-batches of at least this many tokens decompress the cached c and run
   * standard attention (fewer FLOPs per prompt token, seed 001); smaller ones stay absorbed.
   * Default 128.
   */
  decompressMinTokens?: number;
}

export interface MemoryReport {
  /** Bytes of every KV cache buffer. */
  kvCacheBytes: number;
  /** Bytes per cache role ('c^KV', 'kv^T', 'K', 'V') with its type. */
  kvCacheByRole: { role: string; type: CacheType; bytes: number }[];
  /** Activations and scratch of the largest graph compiled (worst case at creation). */
  computeBufferBytes: number;
}

export interface EvaluateOptions {
  /** 'last' (default): logits of the last token only; 'all': one row per token. */
  logits?: 'all' | 'last';
  /** Checked between micro-batches. */
  signal?: AbortSignal;
  /**
   * Writes the logits here (exactly `nVocab` floats, or `tokens.length * nVocab` with
   * `logits: 'all'`) and returns it, instead of a new array: a generation loop that reuses
   * one array spares a 400 KB allocation and its page faults per token.
   */
  output?: Float32Array;
}

const mib = (bytes: number): string => (bytes / 1048576).toFixed(2);

export class Context {
  private handleValue: ContextHandle | undefined;
  private readonly graphs = new Map<string, GraphHandle>();
  private queue: Promise<unknown> = Promise.resolve();
  /** The tokens in the KV cache, in order. */
  private history: number[] = [];

  /** @internal use model.createContext */
  constructor(
    readonly model: Model,
    readonly contextSize: number,
    readonly mode: AttentionMode,
    readonly batchSize: number,
    readonly threads: number,
    private readonly caches: CacheSpec[],
    handle: ContextHandle,
  ) {
    this.handleValue = handle;
  }

  private get handle(): ContextHandle {
    if (!this.handleValue) throw new DisposedError('Context');
    return this.handleValue;
  }

  /** Tokens in the KV cache. */
  get nPast(): number {
    return this.history.length;
  }

  /** The tokens in the KV cache, oldest first. */
  get tokens(): readonly number[] {
    return this.history;
  }

  /** Forgets every cached token (the cache memory is reused). */
  reset(): void {
    this.truncate(0);
  }

  /** Keeps the first `n` cached tokens and forgets the rest. */
  truncate(n: number): void {
    this.handle;
    if (!Number.isInteger(n) || n < 0 || n > this.history.length) throw invalidOption('n', `an integer in 0..${this.history.length}`, n);
    this.history.length = n;
  }

  get memory(): MemoryReport {
    const info = native().contextInfo(this.handle);
    const byRole = new Map<string, { role: string; type: CacheType; bytes: number }>();
    this.caches.forEach((spec, i) => {
      const entry = byRole.get(spec.role) ?? { role: spec.role, type: spec.cacheType, bytes: 0 };
      entry.bytes += info.cacheBytes[i] ?? 0;
      byRole.set(spec.role, entry);
    });
    const kvCacheByRole = [...byRole.values()];
    return {
      kvCacheBytes: kvCacheByRole.reduce((s, r) => s + r.bytes, 0),
      kvCacheByRole,
      computeBufferBytes: info.computeBufferBytes,
    };
  }

  /** The memory lines ik_llama.cpp prints (seed 004), for logs and benchmarks. */
  memoryReport(): string {
    const m = this.memory;
    const parts = m.kvCacheByRole.map((r) => `${r.role} (${r.type}): ${mib(r.bytes)} MiB`);
    if (this.mode.mla >= 1 && !m.kvCacheByRole.some((r) => r.role === 'kv^T')) parts.push('kv^T: not used');
    return [
      `KV self size  = ${mib(m.kvCacheBytes)} MiB, ${parts.join(', ')}`,
      `CPU compute buffer size = ${mib(m.computeBufferBytes)} MiB`,
    ].join('\n');
  }

  private graph(nTokens: number, allLogits: boolean): GraphHandle {
    const key = `${nTokens}:${allLogits ? 'all' : 'last'}`;
    let graph = this.graphs.get(key);
    if (!graph) {
      const desc = buildForward({
        config: this.model.config,
        weights: this.model.weights,
        mode: this.mode,
        caches: this.caches,
        nTokens,
        allLogits,
        measureScratch: (unplanned) => callNativeSync(() => native().measureGraph(this.handle, unplanned)),
      });
      graph = callNativeSync(() => native().compileGraph(this.handle, desc));
      this.graphs.set(key, graph);
    }
    return graph;
  }

  /** @internal compiles the largest graphs up front so the memory report is the real one. */
  prepare(): void {
    const largest = Math.min(this.batchSize, this.contextSize);
    this.graph(largest, false);
    // mla 3 runs batches below the decompression threshold absorbed, with another workspace.
    const largestAbsorbed = Math.min(largest, this.mode.decompressMinTokens - 1);
    if (this.mode.mla === 3 && largestAbsorbed > 1 && largestAbsorbed < largest) this.graph(largestAbsorbed, false);
    this.graph(1, false);
  }

  /**
   * Appends tokens to the sequence and returns their logits: `nVocab` floats for the
   * last token, or one row per token with `logits: 'all'`.
   */
  evaluate(tokens: ArrayLike<number>, options: EvaluateOptions = {}): Promise<Float32Array> {
    const run = this.queue.then(() => this.evaluateNow(tokens, options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async evaluateNow(tokens: ArrayLike<number>, options: EvaluateOptions): Promise<Float32Array> {
    const handle = this.handle;
    const { logits = 'last', signal, output } = options;
    if (logits !== 'all' && logits !== 'last') throw invalidOption('logits', "'all' or 'last'", logits);
    const nVocab = this.model.config.nVocab;
    if (tokens.length === 0) throw invalidOption('tokens', 'at least one token', tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= nVocab) throw invalidOption(`tokens[${i}]`, `an integer in 0..${nVocab - 1}`, t);
    }
    if (this.nPast + tokens.length > this.contextSize) {
      throw new ContextFullError('CONTEXT_FULL', `the context holds ${this.contextSize} tokens: ${this.nPast} cached + ${tokens.length} new do not fit`);
    }
    const all = logits === 'all';
    const size = all ? tokens.length * nVocab : nVocab;
    if (output !== undefined && (!(output instanceof Float32Array) || output.length !== size)) {
      const received = output instanceof Float32Array ? `a Float32Array of ${output.length}` : output;
      throw invalidOption('output', `a Float32Array of ${size} floats`, received);
    }
    const out = output ?? new Float32Array(size);
    for (let start = 0; start < tokens.length; start += this.batchSize) {
      signal?.throwIfAborted();
      const n = Math.min(this.batchSize, tokens.length - start);
      const batch = new Int32Array(n);
      const positions = new Int32Array(n);
      const past = this.nPast;
      for (let i = 0; i < n; i++) {
        batch[i] = tokens[start + i]!;
        positions[i] = past + i;
      }
      const graph = this.graph(n, all);
      // The native side writes straight into out: all rows in place, or the last row's
      // logits over those of the batches before it.
      const target = all ? out.subarray(start * nVocab, (start + n) * nVocab) : out;
      await callNative(() => native().evaluate(handle, graph, batch, positions, past, target));
      for (const t of batch) this.history.push(t);
    }
    return out;
  }

  get disposed(): boolean {
    return this.handleValue === undefined;
  }

  /** Frees the KV cache and buffers once a running evaluation ends. Idempotent. */
  async dispose(): Promise<void> {
    if (!this.handleValue) return;
    await this.queue;
    if (!this.handleValue) return;
    native().disposeContext(this.handleValue);
    this.handleValue = undefined;
    this.graphs.clear();
    this.model.forgetContext(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  /**
   * Evaluates `tokens` reusing the longest prefix already in the cache (prompt caching):
   * only the rest is computed. Returns the logits of the last token.
   */
  prefill(tokens: readonly number[], options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    const run = this.queue.then(() => {
      if (tokens.length === 0) throw invalidOption('tokens', 'at least one token', 0);
      let common = 0;
      while (common < tokens.length && common < this.history.length && this.history[common] === tokens[common]) common++;
      // At least one token must run to produce logits.
      this.truncate(Math.min(common, tokens.length - 1));
      return this.evaluateNow(tokens.slice(this.nPast), { signal: options.signal });
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Context shift (seed 003, for MLA): drops `drop` cached tokens after the first `keep`
   * and moves the later ones down, re-rotating only the RoPE part of their cached keys.
   * Generation then continues as if those tokens had never been seen.
   */
  shift(keep: number, drop: number): Promise<void> {
    const run = this.queue.then(async () => {
      const n = this.history.length;
      if (!Number.isInteger(keep) || keep < 0 || keep >= n) throw invalidOption('keep', `an integer in 0..${n - 1}`, keep);
      if (!Number.isInteger(drop) || drop < 1 || keep + drop > n) throw invalidOption('drop', `an integer in 1..${n - keep}`, drop);
      await callNative(() => native().shiftContext(this.handle, keep, drop, n, ropeParams(this.model.config)));
      this.history.splice(keep, drop);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Writes the cached tokens and their KV cache rows to `path`. */
  save(path: string): Promise<void> {
    const run = this.queue.then(async () => {
      if (typeof path !== 'string' || path === '') throw invalidOption('path', 'a non-empty string', path);
      const header: SavedCacheHeader = { format: savedCacheFormat, model: modelFingerprint(this.model), mode: this.mode, tokens: this.history };
      await callNative(() => native().saveContext(this.handle, path, JSON.stringify(header), this.history.length));
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Replaces the cache with one written by {@link save} for the same model and attention
   * mode (the context size may differ if the tokens fit).
   */
  restore(path: string): Promise<void> {
    const run = this.queue.then(async () => {
      if (typeof path !== 'string' || path === '') throw invalidOption('path', 'a non-empty string', path);
      const header = parseSavedHeader(callNativeSync(() => native().readContextHeader(path)), path);
      const fingerprint = modelFingerprint(this.model);
      if (JSON.stringify(header.model) !== JSON.stringify(fingerprint)) {
        throw invalidOption('path', `a cache saved for this model (${fingerprint.name})`, header.model.name);
      }
      const m = header.mode;
      if (m.mla !== this.mode.mla || m.flashAttention !== this.mode.flashAttention || m.cacheType !== this.mode.cacheType || m.vCacheType !== this.mode.vCacheType) {
        throw invalidOption('path', 'a cache saved with the same mla, flashAttention, cacheType and vCacheType', m);
      }
      if (header.tokens.length > this.contextSize) {
        throw new ContextFullError('CONTEXT_FULL', `the saved cache holds ${header.tokens.length} tokens; this context holds ${this.contextSize}`);
      }
      this.history = [];
      await callNative(() => native().loadContext(this.handle, path, header.tokens.length));
      this.history = [...header.tokens];
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  // Generation (lib/api/generate.ts). One generation at a time per context: two would
  // interleave their tokens in the same cache.

  /**
   * Streams the continuation of `prompt` as text pieces. The prompt is appended at
   * {@link nPast}: call {@link reset} first to start a new sequence. A string prompt is
   * tokenized with special tokens parsed and, on an empty context, the model's BOS.
   * Options are checked (and may throw) here; evaluation starts on the first `next()`.
   * Afterwards the context holds the prompt and every sampled token but the last.
   */
  generate(prompt: string | readonly number[], options: GenerateOptions = {}): AsyncIterable<string> {
    return generate(this, prompt, options);
  }

  /** Generates to the end and returns the text, tokens, stop reason and timings. */
  generateText(prompt: string | readonly number[], options: GenerateOptions = {}): Promise<GenerateResult> {
    return generateText(this, prompt, options);
  }

  /**
   * Answers a conversation with the model's chat template: the prompt tokens already in
   * the cache are reused, and the reply comes back split into answer, reasoning and tool
   * calls (stream it with `onDelta`).
   */
  chat(messages: readonly ChatMessage[], options: ChatOptions = {}): Promise<ChatResult> {
    return chat(this, messages, options);
  }
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw invalidOption(name, `an integer in ${min}..${max}`, value);
}

/** @internal */
export async function createContext(model: Model, options: ContextOptions): Promise<Context> {
  const c = model.config;
  const contextSize = options.contextSize ?? Math.min(c.contextLength, 4096);
  checkInteger('contextSize', contextSize, 1, 1 << 24);
  const batchSize = options.batchSize ?? 512;
  checkInteger('batchSize', batchSize, 1, 1 << 16);
  const threads = options.threads ?? defaultThreads();
  checkInteger('threads', threads, 1, 1024);
  const mode: AttentionMode = {
    mla: options.mla ?? 3,
    flashAttention: options.flashAttention ?? true,
    cacheType: options.cacheType ?? 'f16',
    vCacheType: options.vCacheType ?? 'f16',
    amb: options.amb ?? 0,
    decompressMinTokens: options.decompressMinTokens ?? mla3DecompressMinTokens,
  };
  checkAttentionMode(mode);
  const caches = cacheSpecs(c, mode, contextSize);
  const total = caches.reduce((s, spec) => s + cacheBytes(spec), 0);
  if (total > os.totalmem()) {
    throw new OutOfMemoryError('OUT_OF_MEMORY', `a KV cache of ${mib(total)} MiB for ${contextSize} tokens exceeds this machine's ${mib(os.totalmem())} MiB`);
  }
  const layouts = layoutsNeeded(mode);
  if (layouts.split) await model.ensureLayout('split');
  if (layouts.legacy) await model.ensureLayout('legacy');
  const handle = callNativeSync(() =>
    native().createContext(model.handle, {
      nCtx: contextSize,
      threads,
      caches: caches.map((s) => ({
        name: s.name,
        type: typeId(s.type),
        rowLength: s.rowLength,
        nRows: s.nRows,
        transposed: s.transposed,
        rowsPerSlot: s.rowsPerSlot,
        ropeOffset: s.ropeOffset,
        ropeDims: s.ropeDims,
      })),
    }),
  );
  const context = new Context(model, contextSize, mode, batchSize, threads, caches, handle);
  try {
    context.prepare();
  } catch (error) {
    await context.dispose();
    throw error;
  }
  return context;
}

function typeId(type: keyof typeof GgufTensorType): number {
  return GgufTensorType[type];
}

const savedCacheFormat = 'deepmla-kv-1';

interface SavedCacheHeader {
  format: string;
  model: ReturnType<typeof modelFingerprint>;
  mode: AttentionMode;
  tokens: number[];
}

function modelFingerprint(model: Model): { name: string; fileSize: number; tensors: number; nLayer: number; nEmbd: number; nVocab: number } {
  const c = model.config;
  return { name: c.name, fileSize: model.info.fileSize, tensors: model.info.tensors.length, nLayer: c.nLayer, nEmbd: c.nEmbd, nVocab: c.nVocab };
}

function parseSavedHeader(text: string, path: string): SavedCacheHeader {
  let header: Partial<SavedCacheHeader>;
  try {
    header = JSON.parse(text) as Partial<SavedCacheHeader>;
  } catch {
    throw invalidOption('path', 'a deepmla KV cache file', path);
  }
  if (header.format !== savedCacheFormat || !header.model || !header.mode || !Array.isArray(header.tokens) || !header.tokens.every((t) => Number.isInteger(t))) {
    throw invalidOption('path', `a deepmla KV cache file (${savedCacheFormat})`, path);
  }
  return header as SavedCacheHeader;
}
