/**
 * A loaded DeepSeek2 GGUF: the file is mmapped and prefaulted by native code off the
 * main thread, or with `mmap: false` read into native memory (weights never enter JS
 * memory either way); its config and tensors are checked.
 */
import * as os from 'os';

import { DisposedError, callNative, invalidOption } from '../errors';
import { GgufInfo, inspectGguf } from '../gguf';
import { ModelHandle, native } from '../native';
import { DeepseekConfig, readDeepseekConfig } from '../model/config';
import { TypeName } from '../model/graph';
import { WeightInfo } from '../model/deepseek2';
import { ChatTemplate } from '../chat';
import { Tokenizer } from '../tokenizer';
import { Context, ContextOptions, createContext } from './Context';

export interface LoadModelOptions {
  /** Called with the fraction (0..1) of the weights paged in (or read, with `mmap: false`). */
  onProgress?: (fraction: number) => void;
  /**
   * true (default): map the file; the weights stay in the page cache, shared by every
   * process that maps the same file. false: read the whole file into the process's own
   * memory (2 MiB pages where transparent huge pages allow), like llama.cpp's --no-mmap:
   * the same memory once loaded, a longer load, no sharing, and faster token generation
   * (measured +10-14% tokens/s on Zen4, where streaming from page-cache pages is slower).
   */
  mmap?: boolean;
  /** Aborts loading; the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

const typeNames: Record<string, TypeName> = {
  f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0', q6_0: 'Q6_0', q8_KV: 'Q8_KV', i32: 'I32',
};

export class Model {
  private handleValue: ModelHandle | undefined;
  private readonly weightInfo = new Map<string, WeightInfo>();
  private readonly derivations = new Map<string, Promise<void>>();
  private readonly contexts = new Set<Context>();

  /** @internal use {@link loadModel} */
  constructor(
    readonly path: string,
    readonly info: GgufInfo,
    readonly config: DeepseekConfig,
    handle: ModelHandle,
  ) {
    this.handleValue = handle;
    for (const t of info.tensors) {
      const type = typeNames[t.type];
      if (type) this.weightInfo.set(t.name, { type, shape: t.shape });
    }
  }

  /** @internal */
  get handle(): ModelHandle {
    if (!this.handleValue) throw new DisposedError('Model');
    return this.handleValue;
  }

  /** Every weight the graph may read: the file's and those derived at load. */
  get weights(): ReadonlyMap<string, WeightInfo> {
    return this.weightInfo;
  }

  /**
   * Makes sure the attention tensors of `layout` exist, deriving them from the other
   * layout once (DESIGN.md "Two tensor layouts"). A derived attn_v_b is a view of
   * attn_kv_b's rows in their own type; the other derived tensors are F32 when their
   * source is F32 and F16 otherwise, so no weight is quantized twice.
   */
  async ensureLayout(layout: 'split' | 'legacy'): Promise<void> {
    if (this.config.layout === layout) return;
    let pending = this.derivations.get(layout);
    if (!pending) {
      pending = this.derive(layout);
      this.derivations.set(layout, pending);
    }
    await pending;
  }

  private async derive(layout: 'split' | 'legacy'): Promise<void> {
    const c = this.config;
    await callNative(() => native().deriveLayout(this.handle, layout, c.nLayer, c.nHead, c.nopeDim, c.vHeadDim, c.kvLoraRank));
    for (let il = 0; il < c.nLayer; il++) {
      const p = `blk.${il}.`;
      if (layout === 'split') {
        const source = this.weightInfo.get(`${p}attn_kv_b.weight`)!;
        const type: TypeName = source.type === 'F32' ? 'F32' : 'F16';
        this.weightInfo.set(`${p}attn_k_b.weight`, { type, shape: [c.nopeDim, c.kvLoraRank, c.nHead] });
        // A view of kv_b's own rows (no copy), in kv_b's type.
        this.weightInfo.set(`${p}attn_v_b.weight`, { type: source.type, shape: [c.kvLoraRank, c.vHeadDim, c.nHead] });
      } else {
        const k = this.weightInfo.get(`${p}attn_k_b.weight`)!;
        const v = this.weightInfo.get(`${p}attn_v_b.weight`)!;
        const type: TypeName = k.type === 'F32' && v.type === 'F32' ? 'F32' : 'F16';
        this.weightInfo.set(`${p}attn_kv_b.weight`, { type, shape: [c.kvLoraRank, c.nHead * (c.nopeDim + c.vHeadDim)] });
      }
    }
  }

  /** Creates an evaluation context (KV cache, compute buffers, threads). */
  async createContext(options: ContextOptions = {}): Promise<Context> {
    const context = await createContext(this, options);
    this.contexts.add(context);
    return context;
  }

  /** @internal */
  forgetContext(context: Context): void {
    this.contexts.delete(context);
  }

  get disposed(): boolean {
    return this.handleValue === undefined;
  }

  /**
   * Releases the mapping once no context uses it (contexts keep the weights alive
   * until they are disposed too). Idempotent.
   */
  dispose(): void {
    if (!this.handleValue) return;
    native().disposeModel(this.handleValue);
    this.handleValue = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  private tokenizerValue: Tokenizer | undefined;

  /**
   * The model's tokenizer, built from its GGUF metadata on first use. Throws
   * UnsupportedError or GgufError if the file's tokenizer cannot be read.
   */
  get tokenizer(): Tokenizer {
    this.tokenizerValue ??= Tokenizer.fromMetadata(this.info.metadata);
    return this.tokenizerValue;
  }

  private chatTemplateValue: ChatTemplate | undefined;

  /** The model's chat template (tokenizer.chat_template, else DeepSeek-V3's), built on first use. */
  get chatTemplate(): ChatTemplate {
    this.chatTemplateValue ??= ChatTemplate.fromMetadata(this.info.metadata);
    return this.chatTemplateValue;
  }
}

/** Loads a DeepSeek2 GGUF (DeepSeek-V2, V2-Lite, V3, R1, Kimi-K2). */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  if (typeof path !== 'string' || path === '') throw invalidOption('path', 'a non-empty string', path);
  const { onProgress, signal, mmap = true } = options;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidOption('onProgress', 'a function', typeof onProgress);
  if (typeof mmap !== 'boolean') throw invalidOption('mmap', 'true or false', mmap);
  signal?.throwIfAborted();
  const info = await inspectGguf(path);
  const config = readDeepseekConfig(info);
  signal?.throwIfAborted();
  const abortFlag = new Int32Array(1);
  const onAbort = (): void => {
    abortFlag[0] = 1;
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const handle = await callNative(() => native().loadModel(path, onProgress, abortFlag, !mmap));
    return new Model(path, info, config, handle);
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Default thread count: the cores Node may use. */
export function defaultThreads(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}
