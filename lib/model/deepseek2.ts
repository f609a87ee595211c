/**
 * The DeepSeek2 forward pass as a graph (DESIGN.md; DeepSeek-V3's inference/model.py is
 * the model for its shape): forward -> block -> mla / ffn / moe. Pure: config, weights,
 * attention mode and batch shape in; a GraphDesc out.
 */
import { InternalError } from '../errors';
import { AttentionMode, CacheSpec } from './attentionMode';
import { DeepseekConfig, attentionScale } from './config';
import { NativeRopeParams } from '../native';
import { GraphBuilder, GraphDesc, MeasureScratch, Tensor, TypeName } from './graph';

export interface WeightInfo {
  type: TypeName;
  shape: number[];
}

export interface ForwardSpec {
  config: DeepseekConfig;
  /** Every weight the model has (file and derived), by GGUF name. */
  weights: ReadonlyMap<string, WeightInfo>;
  mode: AttentionMode;
  caches: readonly CacheSpec[];
  nTokens: number;
  /** Logits for every token of the batch, or only the last. */
  allLogits: boolean;
  /** Asks the executor for each op's scratch, which is then planned inside the arena. */
  measureScratch?: MeasureScratch;
}

/** RoPE settings of the model's keys and queries (also used to re-rotate on a context shift). */
export function ropeParams(c: DeepseekConfig): NativeRopeParams {
  const s = c.ropeScaling;
  const yarn = s.type === 'yarn' && s.factor > 1;
  const freqScale = s.type === 'none' ? 1 : 1 / s.factor;
  return {
    nDims: c.ropeDim,
    freqBase: c.ropeFreqBase,
    freqScale,
    // YaRN as llama.cpp runs DeepSeek2: ext_factor 1, beta_fast 32, beta_slow 1, and an
    // attention factor that cancels rope_yarn's own 1 + 0.1 ln(1/freq_scale) magnitude.
    extFactor: yarn ? 1 : 0,
    attnFactor: yarn ? 1 / (1 + 0.1 * Math.log(1 / freqScale)) : 1,
    betaFast: 32,
    betaSlow: 1,
    nCtxOrig: s.originalContextLength,
  };
}

export function buildForward(spec: ForwardSpec): GraphDesc {
  return new Deepseek2Graph(spec).forward();
}

class Deepseek2Graph {
  private readonly g: GraphBuilder;
  private readonly c: DeepseekConfig;
  private readonly n: number;

  constructor(private readonly spec: ForwardSpec) {
    this.g = new GraphBuilder(spec.nTokens);
    this.c = spec.config;
    this.n = spec.nTokens;
  }

  private w(name: string): Tensor {
    const info = this.spec.weights.get(name);
    if (!info) throw new InternalError('INTERNAL', `weight '${name}' is missing (the model check should have caught it)`);
    return this.g.weight(name, info.type, info.shape);
  }

  private has(name: string): boolean {
    return this.spec.weights.has(name);
  }

  private matmul(name: string, weight: Tensor, x: Tensor, out?: Tensor): Tensor {
    const y = out ?? this.g.activation(name, [weight.ne[1], ...x.ne.slice(1)]);
    this.g.op('matmul', name, [weight, x], [y]);
    return y;
  }

  private rmsNorm(name: string, x: Tensor, weight: Tensor, out?: Tensor): Tensor {
    const y = out ?? this.g.activation(name, x.ne);
    this.g.op('rms_norm', name, [x, weight], [y], { eps: this.c.normEps });
    return y;
  }

  private add(name: string, a: Tensor, b: Tensor): Tensor {
    const y = this.g.activation(name, a.ne);
    this.g.op('add', name, [a, b], [y]);
    return y;
  }

  private rope(name: string, x: Tensor, out: Tensor, positions: Tensor = this.g.positions): void {
    this.g.op('rope', name, [x, positions], [out], { ...ropeParams(this.c) });
  }

  forward(): GraphDesc {
    const { nEmbd, nVocab } = this.c;
    let x = this.g.activation('embd', [nEmbd, this.n]); // [nEmbd, nTokens]
    this.g.op('get_rows', 'token_embd', [this.w('token_embd.weight'), this.g.tokens], [x]);
    // Only the rows that get logits go past the last layer's cache store: its queries,
    // attention, output projection and FFN run for them alone (llama.cpp's inp_out_ids
    // starts after the attention; the cache is all the other rows are for).
    const rows = this.spec.allLogits ? this.n : 1;
    for (let il = 0; il < this.c.nLayer; il++) x = this.block(il, x, il === this.c.nLayer - 1 ? rows : this.n);
    const normed = this.rmsNorm('output_norm', x, this.w('output_norm.weight')); // [nEmbd, rows]
    const logits = this.matmul('output', this.w('output.weight'), normed); // [nVocab, rows]
    this.g.expectShape('output', logits, [nVocab, rows]);
    return this.g.build(logits, this.spec.measureScratch);
  }

  /** The micro-batch's last `rows` rows of x [nEmbd, nTokens] (x itself for all of them). */
  private lastRows(x: Tensor, name: string, rows: number): Tensor {
    if (rows === x.ne[1]) return x;
    return this.g.view(x, name, [x.ne[0], rows], undefined, (x.ne[1] - rows) * x.nb[1]);
  }

  /** One block; its output holds the last `rows` rows of the micro-batch. */
  private block(il: number, x: Tensor, rows: number): Tensor {
    const p = `blk.${il}.`;
    const attn = this.mla(il, this.rmsNorm(`${p}attn_norm`, x, this.w(`${p}attn_norm.weight`)), rows); // [nEmbd, rows]
    const h = this.add(`${p}attn_residual`, this.lastRows(x, `${p}residual_rows`, rows), attn);
    const normed = this.rmsNorm(`${p}ffn_norm`, h, this.w(`${p}ffn_norm.weight`));
    const f = il < this.c.nLeadingDense ? this.ffn(`${p}ffn`, normed, '') : this.moe(il, normed);
    return this.add(`${p}ffn_residual`, h, f); // [nEmbd, rows]
  }

  private ffn(name: string, x: Tensor, suffix: '' | '_shexp'): Tensor {
    const p = name.slice(0, name.lastIndexOf('.') + 1);
    const gate = this.matmul(`${p}ffn_gate${suffix}`, this.w(`${p}ffn_gate${suffix}.weight`), x); // [ffnDim, rows]
    const up = this.matmul(`${p}ffn_up${suffix}`, this.w(`${p}ffn_up${suffix}.weight`), x); // [ffnDim, rows]
    // In place: the gate buffer takes silu(gate) * up, so no third [ffnDim, rows] buffer.
    this.g.op('swiglu', `${p}ffn_act${suffix}`, [gate, up], [gate]); // [ffnDim, rows]
    return this.matmul(`${p}ffn_down${suffix}`, this.w(`${p}ffn_down${suffix}.weight`), gate); // [nEmbd, rows]
  }

  private moe(il: number, x: Tensor): Tensor {
    const p = `blk.${il}.`;
    const c = this.c;
    const rows = x.ne[1];
    const logits = this.matmul(`${p}ffn_gate_inp`, this.w(`${p}ffn_gate_inp.weight`), x); // [nExpert, rows]
    const ids = this.g.activation(`${p}expert_ids`, [c.nExpertUsed, rows], 'I32'); // [nExpertUsed, rows]
    const weights = this.g.activation(`${p}expert_weights`, [c.nExpertUsed, rows]); // [nExpertUsed, rows]
    const bias = this.has(`${p}exp_probs_b.bias`) ? [this.w(`${p}exp_probs_b.bias`)] : [];
    this.g.op('moe_route', `${p}gate`, [logits, ...bias], [ids, weights], {
      gating: c.gating === 'sigmoid' ? 2 : 1,
      norm: c.expertWeightsNorm ? 1 : 0,
      scale: c.expertWeightsScale,
      nGroup: c.nExpertGroup,
      nGroupUsed: c.nExpertGroupUsed,
    });
    const routed = this.g.activation(`${p}ffn_moe`, [c.nEmbd, rows]); // [nEmbd, rows]
    this.g.op('moe_ffn', `${p}ffn_moe`, [x, ids, weights, this.w(`${p}ffn_gate_exps.weight`), this.w(`${p}ffn_up_exps.weight`), this.w(`${p}ffn_down_exps.weight`)], [routed]);
    if (c.nExpertShared === 0) return routed;
    return this.add(`${p}ffn_moe_out`, routed, this.ffn(`${p}ffn`, x, '_shexp')); // [nEmbd, rows]
  }

  /**
   * Multi-head latent attention: every row of x [nEmbd, nTokens] goes into the cache, the
   * last `rows` ask; returns attn_output's result [nEmbd, rows].
   */
  private mla(il: number, x: Tensor, rows: number): Tensor {
    const p = `blk.${il}.`;
    const { nHead, nopeDim, ropeDim, kvLoraRank, vHeadDim } = this.c;
    const { mode } = this.spec;
    const n = this.n;
    const qk = nopeDim + ropeDim;
    const xq = this.lastRows(x, `${p}query_rows`, rows); // [nEmbd, rows]
    const positions = rows === n ? this.g.positions : this.g.view(this.g.positions, `${p}query_positions`, [rows], undefined, (n - rows) * 4);
    // Attention ops: the queries are the micro-batch's last rows, after queryOffset others.
    const queryOffset = n - rows;

    let q: Tensor; // [nHead * qk, rows]
    if (this.c.qLoraRank === undefined) {
      q = this.matmul(`${p}attn_q`, this.w(`${p}attn_q.weight`), xq);
    } else {
      const qa = this.matmul(`${p}attn_q_a`, this.w(`${p}attn_q_a.weight`), xq); // [qLoraRank, rows]
      const qaNorm = this.rmsNorm(`${p}attn_q_a_norm`, qa, this.w(`${p}attn_q_a_norm.weight`));
      q = this.matmul(`${p}attn_q_b`, this.w(`${p}attn_q_b.weight`), qaNorm);
    }
    const qHeads = this.g.view(q, `${p}q`, [qk, nHead, rows]); // [qk, nHead, rows]
    const qNope = this.g.view(q, `${p}q_nope`, [nopeDim, nHead, rows], [4, qk * 4, nHead * qk * 4]); // [nope, nHead, rows]
    const qPe = this.g.view(q, `${p}q_pe`, [ropeDim, nHead, rows], [4, qk * 4, nHead * qk * 4], nopeDim * 4); // [rope, nHead, rows]

    // What the cache keeps: [c ; kPe] per token, c normalised, kPe rotated (one for all heads).
    const row = kvLoraRank + ropeDim;
    const kvA = this.matmul(`${p}attn_kv_a_mqa`, this.w(`${p}attn_kv_a_mqa.weight`), x); // [row, nTokens]
    const kvRow = this.g.activation(`${p}kv_row`, [row, n]); // [row, nTokens]
    const c = this.g.view(kvRow, `${p}c`, [kvLoraRank, n], [4, row * 4]); // [kvLora, nTokens]
    this.rmsNorm(`${p}attn_kv_a_norm`, this.g.view(kvA, `${p}c_raw`, [kvLoraRank, n], [4, row * 4]), this.w(`${p}attn_kv_a_norm.weight`), c);
    const kPe = this.g.view(kvRow, `${p}k_pe`, [ropeDim, 1, n], [4, row * 4, row * 4], kvLoraRank * 4); // [rope, 1, nTokens]
    this.rope(`${p}k_pe_rope`, this.g.view(kvA, `${p}k_pe_raw`, [ropeDim, 1, n], [4, row * 4, row * 4], kvLoraRank * 4), kPe);

    const caches = this.spec.caches.filter((s) => s.layer === il);
    const cache = (role: CacheSpec['role']): Tensor => {
      const s = caches.find((x) => x.role === role);
      if (!s) throw new InternalError('INTERNAL', `layer ${il} has no ${role} cache`);
      return this.g.cache(s.name, this.spec.caches.indexOf(s), s.type, s.ne, s.nb);
    };
    const scale = attentionScale(this.c);
    const flash = mode.flashAttention ? 1 : 0;
    let heads: Tensor; // [vHeadDim, nHead, nTokens]

    if (mode.mla === 0) {
      // Standard attention: decompress per-head keys and values, cache them.
      this.rope(`${p}q_pe_rope`, qPe, qPe, positions);
      const kv = this.matmul(`${p}attn_kv_b`, this.w(`${p}attn_kv_b.weight`), c); // [nHead * (nope + v), nTokens]
      const kvStride = (nopeDim + vHeadDim) * 4;
      const k = this.g.activation(`${p}k`, [qk, nHead, n]); // [qk, nHead, nTokens]
      this.g.op('copy', `${p}k_nope`, [this.g.view(kv, `${p}kv_nope`, [nopeDim, nHead, n], [4, kvStride, nHead * kvStride])], [this.g.view(k, `${p}k_nope_dst`, [nopeDim, nHead, n], [4, qk * 4, nHead * qk * 4])]);
      // kPe is shared by all heads: a view with head stride 0 broadcasts it.
      this.g.op('copy', `${p}k_pe_heads`, [this.g.view(kvRow, `${p}k_pe_bcast`, [ropeDim, nHead, n], [4, 0, row * 4], kvLoraRank * 4)], [this.g.view(k, `${p}k_pe_dst`, [ropeDim, nHead, n], [4, qk * 4, nHead * qk * 4], nopeDim * 4)]);
      const kCache = cache('K');
      const vCache = cache('V');
      this.g.op('kv_store', `${p}k_store`, [k], [kCache]);
      this.g.op('kv_store', `${p}v_store`, [this.g.view(kv, `${p}kv_v`, [vHeadDim, nHead, n], [4, kvStride, nHead * kvStride], nopeDim * 4)], [vCache]);
      heads = this.g.activation(`${p}kqv`, [vHeadDim, nHead, rows]);
      this.g.op('attn_standard', `${p}attn`, [qHeads, kCache, vCache], [heads], { scale, flash, amb: mode.amb, queryOffset });
    } else {
      const kCache = cache('c^KV');
      this.g.op('kv_store', `${p}kv_store`, [this.g.view(kvRow, `${p}kv_row_3d`, [row, 1, n])], [this.g.view(kCache, `${p}c^KV_3d`, [row, 1, kCache.ne[1]], [0, kCache.nb[1], kCache.nb[1]])]);
      if (mode.mla === 3 && rows >= mode.decompressMinTokens) {
        // Prompt processing: decompress the cached c with attn_kv_b, then standard attention.
        this.rope(`${p}q_pe_rope`, qPe, qPe, positions);
        heads = this.g.activation(`${p}kqv`, [vHeadDim, nHead, rows]);
        this.g.op('attn_decompressed', `${p}attn`, [qHeads, kCache, this.w(`${p}attn_kv_b.weight`)], [heads], { scale, flash, amb: mode.amb, queryOffset });
      } else {
        // Absorbed: q_abs = k_b^T q_nope per head, attention over [c ; kPe], then v_b.
        const qAbs = this.g.activation(`${p}q_abs`, [row, nHead, rows]); // [row, nHead, rows]
        this.matmul(`${p}attn_k_b`, this.w(`${p}attn_k_b.weight`), qNope, this.g.view(qAbs, `${p}q_abs_c`, [kvLoraRank, nHead, rows], [4, row * 4, nHead * row * 4]));
        this.rope(`${p}q_pe_rope`, qPe, this.g.view(qAbs, `${p}q_abs_pe`, [ropeDim, nHead, rows], [4, row * 4, nHead * row * 4], kvLoraRank * 4), positions);
        const inputs = [qAbs, kCache];
        if (mode.mla === 1 && !mode.flashAttention) {
          const vT = cache('kv^T');
          this.g.op('kv_store_transposed', `${p}kv^T_store`, [c], [vT]);
          inputs.push(vT);
        }
        const latent = this.g.activation(`${p}kqv_latent`, [kvLoraRank, nHead, rows]); // [kvLora, nHead, rows]
        this.g.op('attn_absorbed', `${p}attn`, inputs, [latent], { scale, flash, amb: mode.amb, queryOffset });
        heads = this.matmul(`${p}attn_v_b`, this.w(`${p}attn_v_b.weight`), latent); // [v, nHead, rows]
      }
    }
    this.g.expectShape(`${p}attn`, heads, [vHeadDim, nHead, rows]);
    const flat = this.g.view(heads, `${p}kqv_flat`, [vHeadDim * nHead, rows]); // [nHead * v, rows]
    return this.matmul(`${p}attn_output`, this.w(`${p}attn_output.weight`), flat); // [nEmbd, rows]
  }
}
