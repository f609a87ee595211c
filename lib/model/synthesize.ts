/**
 * Writes a random-weight deepseek2 GGUF of DeepSeek-V2-Lite's shape (DESIGN.md
 * "Performance yardstick"), with fewer layers: enough to measure speed without
 * downloading 16 GB. Keys, tensor names, shapes and the two attention layouts are those
 * of published V2-Lite GGUFs (DESIGN.md "GGUF facts"), so ik_llama.cpp and llama.cpp
 * load the file too (with the caveats DESIGN.md gives for fewer-layer Lite models).
 *
 * Tensors are produced one at a time while the file is written (GgufTensorSource), in
 * chunks of a few MiB of float32, so a multi-GB model never sits in memory.
 */
import { invalidOption } from '../errors';
import { GgufTensorType, tensorByteSize } from '../gguf/tensorType';
import { GgufTensorSource, GgufWriter } from '../gguf/writer';
import { WeightType, quantizeRows, weightTypes } from '../gguf/quantize';
import { byteToChar } from '../tokenizer/byteLevel';

export type SynthLayout = 'legacy' | 'split';

export interface SynthesizeOptions {
  /** block_count. Default 4. */
  nLayer?: number;
  /** Type of every 2-D and 3-D weight but the router. Default 'Q8_0'. */
  type?: WeightType;
  /** Seed of the weights: the same seed gives the same values whatever the type or layout. Default 1. */
  seed?: number;
  /** attention.q_lora_rank: attn_q_a/attn_q_a_norm/attn_q_b instead of attn_q. Default: none (Lite). */
  qLoraRank?: number;
  /** 'legacy' writes attn_kv_b; 'split' writes attn_k_b and attn_v_b (seed 003). Default 'legacy'. */
  layout?: SynthLayout;
  /** Tokens (rows of token_embd and output). Default 102400 (V2-Lite). */
  nVocab?: number;
  /** embedding_length. Default 2048. */
  nEmbd?: number;
  /** attention.head_count. Default 16. */
  nHead?: number;
  /** expert_count. Default 64. */
  nExpert?: number;
  /** expert_used_count. Default 6. */
  nExpertUsed?: number;
  /** expert_shared_count. Default 2. */
  nExpertShared?: number;
  /** expert_feed_forward_length. Default 1408. */
  expertFfnDim?: number;
  /** feed_forward_length: width of the dense FFN. Default 10944. */
  ffnDim?: number;
  /** leading_dense_block_count. Default 1. */
  nLeadingDense?: number;
  /** general.name. Default 'deepmla-synth-v2lite'. */
  name?: string;
  /** Called before each tensor is generated. */
  onTensor?: (progress: SynthProgress) => void;
  /**
   * Trained weights instead of random ones: the float32 values of a tensor by its name and
   * GGUF shape (innermost first), in the legacy layout (attn_kv_b; the split form is derived
   * from it). Norms and the router are written F32, every other matrix as `type`.
   */
  weights?: (name: string, shape: readonly number[]) => Float32Array;
  /** A real vocabulary instead of the placeholder byte vocab (its size must be nVocab). */
  vocab?: SynthVocab;
  /** context_length. Default 163840 (V2-Lite). */
  contextLength?: number;
  /** V2-Lite's YaRN rope scaling (default true); false writes no rope.scaling keys. */
  ropeScaling?: boolean;
}

/** A byte-level BPE vocabulary (`tokenizer.ggml.model` "gpt2"). */
export interface SynthVocab {
  /** tokenizer.ggml.pre */
  pre: string;
  tokens: readonly string[];
  /** llama_token_type per token: 1 normal, 3 control, ... */
  types: readonly number[];
  merges: readonly string[];
  bosId: number;
  eosId: number;
}

export interface SynthProgress {
  name: string;
  /** 0-based index of this tensor. */
  index: number;
  count: number;
  /** Bytes of tensor data written before this tensor. */
  bytesDone: number;
  bytesTotal: number;
}

export interface SynthesizedModel {
  path: string;
  fileSize: number;
  tensorCount: number;
  /** Bytes of tensor data (weights). */
  weightBytes: number;
}

// DeepSeek-V2-Lite's config.json (DESIGN.md "MLA, concretely" for the attention sizes).
const liteDefaults = {
  nLayer: 4,
  nVocab: 102400,
  nEmbd: 2048,
  nHead: 16,
  nExpert: 64,
  nExpertUsed: 6,
  nExpertShared: 2,
  expertFfnDim: 1408,
  ffnDim: 10944,
  nLeadingDense: 1,
};
const kvLoraRank = 512;
const ropeDim = 64;
const nopeDim = 128;
const vHeadDim = 128;
/** max_position_embeddings of V2-Lite. */
const contextLength = 163840;
/** rope_theta */
const ropeFreqBase = 10000;
/** rms_norm_eps */
const normEps = 1e-6;
/** rope_scaling of V2-Lite: yarn, factor 40 over 4096; yarn_log_multiplier = 0.1 * mscale_all_dim (0.707). */
const ropeScaling = { factor: 40, originalContextLength: 4096, yarnLogMultiplier: 0.0707 };
/** V2-Lite's <｜begin▁of▁sentence｜> and <｜end▁of▁sentence｜>. */
const liteBosId = 100000;
const liteEosId = 100001;

/** llama_ftype of a file whose weights are mostly `type` (llama.h; Q6_0 and Q8_KV from ik_llama.cpp). */
const fileType: Record<WeightType, number> = { F32: 0, F16: 1, Q8_0: 7, BF16: 32, Q6_0: 135, Q8_KV: 149 };

/** Floats generated and quantized at a time: 16 MiB of float32. */
const chunkValues = 1 << 22;

/**
 * mulberry32: a 32-bit state PRNG, plenty for random weights. Returns uniform values in
 * [-1, 1).
 */
function uniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 2147483648) - 1;
  };
}

/** FNV-1a of the tensor name mixed with the seed: each tensor has its own stream. */
function tensorSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

interface TensorPlan {
  name: string;
  type: WeightType;
  /** GGUF shape, innermost first. */
  shape: number[];
  /** Fills `out` with values [start, start + out.length) of the tensor (row-major over shape). */
  values: (start: number, out: Float32Array) => void;
}

/** Values [start, start + out.length) of a tensor given whole. */
function givenValues(values: Float32Array, name: string, shape: readonly number[]): TensorPlan['values'] {
  const count = shape.reduce((a, b) => a * b, 1);
  if (values.length !== count) throw invalidOption(`weights('${name}')`, `${count} values for shape [${shape.join(', ')}]`, values.length);
  return (start, out) => out.set(values.subarray(start, start + out.length));
}

/** Uniform in ±1/sqrt(fan_in), fan_in = shape[0]: activations keep their scale through each matmul. */
function randomValues(seed: number, name: string, fanIn: number): TensorPlan['values'] {
  const scale = 1 / Math.sqrt(fanIn);
  let next = uniform(tensorSeed(seed, name));
  let position = 0;
  return (start, out) => {
    // The writer asks for chunks in order; restart the stream if asked otherwise.
    if (start !== position) {
      next = uniform(tensorSeed(seed, name));
      for (position = 0; position < start; position++) next();
    }
    for (let i = 0; i < out.length; i++) out[i] = next() * scale;
    position = start + out.length;
  };
}

function constantValues(value: number): TensorPlan['values'] {
  return (_start, out) => {
    out.fill(value);
  };
}

function tensorSource(plan: TensorPlan): GgufTensorSource {
  const typeId = GgufTensorType[plan.type];
  const byteLength = tensorByteSize(typeId, plan.shape)!;
  return {
    byteLength,
    bytes: () => {
      const rowLength = plan.shape[0]!;
      const nValues = plan.shape.reduce((a, b) => a * b, 1);
      const rowsPerChunk = Math.max(1, Math.floor(chunkValues / rowLength));
      const out = new Uint8Array(byteLength);
      let written = 0;
      for (let start = 0; start < nValues; start += rowsPerChunk * rowLength) {
        const chunk = new Float32Array(Math.min(rowsPerChunk * rowLength, nValues - start));
        plan.values(start, chunk);
        const bytes = quantizeRows(plan.type, chunk, rowLength);
        out.set(bytes, written);
        written += bytes.length;
      }
      return out;
    },
  };
}

function checkCount(name: string, value: number, min: number, multipleOf = 1): void {
  if (!Number.isSafeInteger(value) || value < min || value % multipleOf !== 0) {
    throw invalidOption(name, multipleOf > 1 ? `an integer >= ${min}, a multiple of ${multipleOf}` : `an integer >= ${min}`, value);
  }
}

/** The tensors of the model, in the order llama.cpp's converter writes them. */
type PlanOptions = Required<Omit<SynthesizeOptions, 'qLoraRank' | 'onTensor' | 'name' | 'weights' | 'vocab'>> &
  Pick<SynthesizeOptions, 'qLoraRank' | 'weights'>;

function planTensors(o: PlanOptions): TensorPlan[] {
  const { type, seed, nEmbd, nHead, nVocab } = o;
  const plans: TensorPlan[] = [];
  const matrix = (name: string, shape: number[], tensorType: WeightType = type): void => {
    const values = o.weights ? givenValues(o.weights(name, shape), name, shape) : randomValues(seed, name, shape[0]!);
    plans.push({ name, type: tensorType, shape, values });
  };
  const norm = (name: string, length: number): void => {
    const values = o.weights ? givenValues(o.weights(name, [length]), name, [length]) : constantValues(1);
    plans.push({ name, type: 'F32', shape: [length], values });
  };

  matrix('token_embd.weight', [nEmbd, nVocab]);
  for (let il = 0; il < o.nLayer; il++) {
    const p = `blk.${il}.`;
    norm(`${p}attn_norm.weight`, nEmbd);
    if (o.qLoraRank === undefined) {
      matrix(`${p}attn_q.weight`, [nEmbd, nHead * (nopeDim + ropeDim)]);
    } else {
      matrix(`${p}attn_q_a.weight`, [nEmbd, o.qLoraRank]);
      norm(`${p}attn_q_a_norm.weight`, o.qLoraRank);
      matrix(`${p}attn_q_b.weight`, [o.qLoraRank, nHead * (nopeDim + ropeDim)]);
    }
    matrix(`${p}attn_kv_a_mqa.weight`, [nEmbd, kvLoraRank + ropeDim]);
    norm(`${p}attn_kv_a_norm.weight`, kvLoraRank);
    plans.push(...kvB(o, p));
    matrix(`${p}attn_output.weight`, [nHead * vHeadDim, nEmbd]);
    norm(`${p}ffn_norm.weight`, nEmbd);
    if (il < o.nLeadingDense) {
      matrix(`${p}ffn_gate.weight`, [nEmbd, o.ffnDim]);
      matrix(`${p}ffn_up.weight`, [nEmbd, o.ffnDim]);
      matrix(`${p}ffn_down.weight`, [o.ffnDim, nEmbd]);
    } else {
      // The router stays F32, as converters write it.
      matrix(`${p}ffn_gate_inp.weight`, [nEmbd, o.nExpert], 'F32');
      matrix(`${p}ffn_gate_exps.weight`, [nEmbd, o.expertFfnDim, o.nExpert]);
      matrix(`${p}ffn_down_exps.weight`, [o.expertFfnDim, nEmbd, o.nExpert]);
      matrix(`${p}ffn_up_exps.weight`, [nEmbd, o.expertFfnDim, o.nExpert]);
      if (o.nExpertShared > 0) {
        const shared = o.expertFfnDim * o.nExpertShared;
        matrix(`${p}ffn_gate_shexp.weight`, [nEmbd, shared]);
        matrix(`${p}ffn_down_shexp.weight`, [shared, nEmbd]);
        matrix(`${p}ffn_up_shexp.weight`, [nEmbd, shared]);
      }
    }
  }
  norm('output_norm.weight', nEmbd);
  matrix('output.weight', [nEmbd, nVocab]);
  return plans;
}

/**
 * attn_kv_b {kvLoraRank, nHead·(nope+v)}, or its split form. Both come from the same
 * values (seeded by the attn_kv_b name), so a legacy and a split file of one seed are the
 * same model. The split is llama.cpp's convert_hf_to_gguf.py: kv_b viewed as
 * [nHead, nope+v, kvLoraRank]; k_b = its first nope rows per head, transposed
 * ({nope, kvLoraRank, nHead}); v_b = the last v rows ({kvLoraRank, v, nHead}).
 */
function kvB(o: Pick<PlanOptions, 'type' | 'seed' | 'nHead' | 'layout' | 'weights'>, p: string): TensorPlan[] {
  const legacyName = `${p}attn_kv_b.weight`;
  const rows = o.nHead * (nopeDim + vHeadDim);
  const full = (): Float32Array => {
    const values = new Float32Array(kvLoraRank * rows); // [rows][kvLoraRank]: 4 MiB at V2-Lite's size
    if (o.weights) givenValues(o.weights(legacyName, [kvLoraRank, rows]), legacyName, [kvLoraRank, rows])(0, values);
    else randomValues(o.seed, legacyName, kvLoraRank)(0, values);
    return values;
  };
  if (o.layout === 'legacy') {
    return [{ name: legacyName, type: o.type, shape: [kvLoraRank, rows], values: (start, out) => out.set(full().subarray(start, start + out.length)) }];
  }
  const kB: TensorPlan['values'] = (start, out) => {
    const kv = full();
    for (let i = 0; i < out.length; i++) {
      const index = start + i; // in [nHead][kvLoraRank][nope]
      const h = Math.floor(index / (kvLoraRank * nopeDim));
      const j = Math.floor(index / nopeDim) % kvLoraRank;
      const d = index % nopeDim;
      out[i] = kv[(h * (nopeDim + vHeadDim) + d) * kvLoraRank + j]!;
    }
  };
  const vB: TensorPlan['values'] = (start, out) => {
    const kv = full();
    for (let i = 0; i < out.length; i++) {
      const index = start + i; // in [nHead][v][kvLoraRank]
      const h = Math.floor(index / (vHeadDim * kvLoraRank));
      const d = Math.floor(index / kvLoraRank) % vHeadDim;
      const j = index % kvLoraRank;
      out[i] = kv[(h * (nopeDim + vHeadDim) + nopeDim + d) * kvLoraRank + j]!;
    }
  };
  return [
    { name: `${p}attn_k_b.weight`, type: o.type, shape: [nopeDim, kvLoraRank, o.nHead], values: kB },
    { name: `${p}attn_v_b.weight`, type: o.type, shape: [kvLoraRank, vHeadDim, o.nHead], values: vB },
  ];
}

function addVocab(writer: GgufWriter, vocab: SynthVocab): void {
  writer.addString('tokenizer.ggml.model', 'gpt2');
  writer.addString('tokenizer.ggml.pre', vocab.pre);
  writer.addArray('tokenizer.ggml.tokens', 'string', [...vocab.tokens]);
  writer.addArray('tokenizer.ggml.token_type', 'int32', [...vocab.types]);
  writer.addArray('tokenizer.ggml.merges', 'string', [...vocab.merges]);
  writer.addUint32('tokenizer.ggml.bos_token_id', vocab.bosId);
  writer.addUint32('tokenizer.ggml.eos_token_id', vocab.eosId);
  writer.addUint32('tokenizer.ggml.padding_token_id', vocab.eosId);
  writer.addBool('tokenizer.ggml.add_bos_token', true);
  writer.addBool('tokenizer.ggml.add_eos_token', false);
}

/** A byte-level BPE vocab: the 256 byte characters, then `<tN>`, BOS and EOS as control tokens. */
function addTokenizer(writer: GgufWriter, nVocab: number): void {
  const bosId = nVocab > liteEosId ? liteBosId : nVocab - 2;
  const eosId = nVocab > liteEosId ? liteEosId : nVocab - 1;
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < nVocab; id++) {
    if (id === bosId) tokens.push('<｜begin▁of▁sentence｜>');
    else if (id === eosId) tokens.push('<｜end▁of▁sentence｜>');
    else tokens.push(id < 256 ? byteToChar[id]! : `<t${id}>`);
    // llama_token_type: 1 normal, 3 control.
    types.push(id === bosId || id === eosId ? 3 : 1);
  }
  writer.addString('tokenizer.ggml.model', 'gpt2');
  writer.addString('tokenizer.ggml.pre', 'deepseek-llm');
  writer.addArray('tokenizer.ggml.tokens', 'string', tokens);
  writer.addArray('tokenizer.ggml.token_type', 'int32', types);
  // No merges: every text encodes byte by byte, which is all a random model needs.
  writer.addArray('tokenizer.ggml.merges', 'string', []);
  writer.addUint32('tokenizer.ggml.bos_token_id', bosId);
  writer.addUint32('tokenizer.ggml.eos_token_id', eosId);
  writer.addUint32('tokenizer.ggml.padding_token_id', eosId);
  writer.addBool('tokenizer.ggml.add_bos_token', true);
  writer.addBool('tokenizer.ggml.add_eos_token', false);
}

/** Writes the model to `path`, one tensor in memory at a time. */
export async function synthesizeModel(path: string, options: SynthesizeOptions = {}): Promise<SynthesizedModel> {
  const o = {
    ...liteDefaults,
    type: 'Q8_0' as WeightType,
    seed: 1,
    layout: 'legacy' as SynthLayout,
    contextLength,
    ropeScaling: true,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as PlanOptions & Pick<SynthesizeOptions, 'onTensor' | 'name' | 'vocab'>;
  if (typeof path !== 'string' || path === '') throw invalidOption('path', 'a non-empty string', path);
  if (!weightTypes.includes(o.type)) throw invalidOption('type', weightTypes.join(' | '), o.type);
  if (o.layout !== 'legacy' && o.layout !== 'split') throw invalidOption('layout', "'legacy' or 'split'", o.layout);
  checkCount('seed', o.seed, 0);
  checkCount('nLayer', o.nLayer, 1);
  // Every row length must be whole blocks of 32 for Q8_0, Q6_0 and Q8_KV.
  const block = o.type === 'F32' || o.type === 'F16' || o.type === 'BF16' ? 1 : 32;
  checkCount('nEmbd', o.nEmbd, block, block);
  checkCount('nHead', o.nHead, 1);
  checkCount('ffnDim', o.ffnDim, block, block);
  checkCount('expertFfnDim', o.expertFfnDim, block, block);
  checkCount('nLeadingDense', o.nLeadingDense, 0);
  if (o.nLeadingDense > o.nLayer) throw invalidOption('nLeadingDense', `at most nLayer (${o.nLayer})`, o.nLeadingDense);
  checkCount('nExpert', o.nExpert, 1);
  checkCount('nExpertUsed', o.nExpertUsed, 1);
  if (o.nExpertUsed > o.nExpert) throw invalidOption('nExpertUsed', `at most nExpert (${o.nExpert})`, o.nExpertUsed);
  checkCount('nExpertShared', o.nExpertShared, 0);
  if (o.qLoraRank !== undefined) checkCount('qLoraRank', o.qLoraRank, block, block);
  // 256 byte tokens + BOS + EOS.
  checkCount('nVocab', o.nVocab, 258);
  checkCount('contextLength', o.contextLength, 1);
  if (o.vocab && o.vocab.tokens.length !== o.nVocab) throw invalidOption('vocab', `${o.nVocab} tokens (nVocab)`, o.vocab.tokens.length);
  if (o.vocab && o.vocab.types.length !== o.vocab.tokens.length) throw invalidOption('vocab.types', `one type per token (${o.vocab.tokens.length})`, o.vocab.types.length);

  const split = o.layout === 'split';
  const k = (name: string): string => `deepseek2.${name}`;
  const writer = new GgufWriter();
  // Keys in the order of llama.cpp's converter for DeepSeek-V2-Lite.
  writer.addString('general.architecture', 'deepseek2');
  writer.addString('general.name', o.name ?? 'deepmla-synth-v2lite');
  writer.addUint32(k('block_count'), o.nLayer);
  writer.addUint32(k('context_length'), o.contextLength);
  writer.addUint32(k('embedding_length'), o.nEmbd);
  writer.addUint32(k('feed_forward_length'), o.ffnDim);
  writer.addUint32(k('attention.head_count'), o.nHead);
  // Split files describe the absorbed form: one 576-wide "head" of K, 512 of V (seed 003).
  writer.addUint32(k('attention.head_count_kv'), split ? 1 : o.nHead);
  writer.addFloat32(k('rope.freq_base'), ropeFreqBase);
  writer.addFloat32(k('attention.layer_norm_rms_epsilon'), normEps);
  writer.addUint32(k('expert_used_count'), o.nExpertUsed);
  writer.addUint32('general.file_type', fileType[o.type]);
  writer.addUint32(k('leading_dense_block_count'), o.nLeadingDense);
  writer.addUint32(k('vocab_size'), o.nVocab);
  if (o.qLoraRank !== undefined) writer.addUint32(k('attention.q_lora_rank'), o.qLoraRank);
  writer.addUint32(k('attention.kv_lora_rank'), kvLoraRank);
  writer.addUint32(k('attention.key_length'), split ? kvLoraRank + ropeDim : nopeDim + ropeDim);
  writer.addUint32(k('attention.value_length'), split ? kvLoraRank : vHeadDim);
  if (split) {
    writer.addUint32(k('attention.key_length_mla'), nopeDim + ropeDim);
    writer.addUint32(k('attention.value_length_mla'), vHeadDim);
  }
  writer.addUint32(k('expert_feed_forward_length'), o.expertFfnDim);
  writer.addUint32(k('expert_count'), o.nExpert);
  writer.addUint32(k('expert_shared_count'), o.nExpertShared);
  writer.addFloat32(k('expert_weights_scale'), 1);
  writer.addBool(k('expert_weights_norm'), false);
  // 1 = softmax (V2).
  writer.addUint32(k('expert_gating_func'), 1);
  writer.addUint32(k('rope.dimension_count'), ropeDim);
  if (o.ropeScaling) {
    writer.addString(k('rope.scaling.type'), 'yarn');
    writer.addFloat32(k('rope.scaling.factor'), ropeScaling.factor);
    writer.addUint32(k('rope.scaling.original_context_length'), ropeScaling.originalContextLength);
    writer.addFloat32(k('rope.scaling.yarn_log_multiplier'), ropeScaling.yarnLogMultiplier);
  }
  writer.addUint32('general.quantization_version', 2);
  if (o.vocab) addVocab(writer, o.vocab);
  else addTokenizer(writer, o.nVocab);

  const plans = planTensors(o);
  const sizes = plans.map((t) => tensorByteSize(GgufTensorType[t.type], t.shape)!);
  const bytesTotal = sizes.reduce((a, b) => a + b, 0);
  let bytesDone = 0;
  plans.forEach((plan, index) => {
    const source = tensorSource(plan);
    writer.addTensor(plan.name, GgufTensorType[plan.type], plan.shape, {
      byteLength: source.byteLength,
      bytes: () => {
        o.onTensor?.({ name: plan.name, index, count: plans.length, bytesDone, bytesTotal });
        const bytes = source.bytes();
        bytesDone += bytes.length;
        return bytes;
      },
    });
  });
  const layout = await writer.writeFile(path);
  return { path, fileSize: layout.fileSize, tensorCount: plans.length, weightBytes: bytesTotal };
}
