/**
 * Text generation on a context: evaluate the prompt, then sample, stream and evaluate one
 * token at a time until an end-of-generation token, a stop string, maxTokens or a full
 * context. Each evaluation is a native call off the main thread, and the stream is pulled:
 * the next token is evaluated only when the consumer asks for the next piece.
 *
 * Cache contract: the prompt is appended at the context's current nPast (nothing is
 * reset; call `context.reset()` to start over). When generation ends, the context holds
 * the prompt and every sampled token but the last (`tokens.slice(0, -1)`): the last one
 * needs no logits, so it is not evaluated. To continue the same sequence, pass it first
 * in the next prompt.
 */
import { ContextFullError, DisposedError, invalidOption } from '../errors';
import { Sampler, SamplingOptions, pickSamplingOptions, resolveSamplingOptions } from '../sampling';
import { Tokenizer } from '../tokenizer';
import type { Context } from './Context';
import type { Model } from './Model';

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to sample at most (the end-of-generation token counts); Infinity: until the context is full. Default 256. */
  maxTokens?: number;
  /** Stop before any of these strings; it is not emitted. Default: none. */
  stop?: string | readonly string[];
  /**
   * Put the BOS token before a string prompt (token-id prompts are used as given). Default: the model's
   * `tokenizer.ggml.add_bos_token` when the context is empty (nPast 0), else false.
   */
  addBos?: boolean;
  /**
   * Stops generation within one token (a prompt between micro-batches of the context's
   * batchSize); the stream throws, the promise rejects, with `signal.reason`.
   */
  signal?: AbortSignal;
  /**
   * Called for every sampled token, end-of-generation tokens included, with the text it
   * releases: often '' (part of a UTF-8 character, or text that may begin a stop string),
   * sometimes the text of several tokens.
   */
  onToken?: (text: string, token: number) => void;
  /**
   * When the context fills up: shift it (seed 003: drop the older half of the tokens after
   * the first `keep`, re-rotating the cached keys) and go on, instead of stopping with
   * 'contextFull'. Default: off. `keep` defaults to 1 (the BOS token).
   */
  contextShift?: boolean | { keep?: number };
  /**
   * Decode control tokens as their text (chat formats whose tool-call markers are control
   * tokens, e.g. Kimi-K2's). Default false.
   */
  decodeSpecial?: boolean;
}

export type StopReason = 'eos' | 'stop' | 'maxTokens' | 'contextFull';

export interface GenerateResult {
  /** The generated text, without the stop string. */
  text: string;
  /** Every sampled token id, the end-of-generation token included. */
  tokens: number[];
  stopReason: StopReason;
  /** Tokens of the prompt evaluated. */
  promptTokens: number;
  /** Tokens sampled (`tokens.length`). */
  generatedTokens: number;
  timings: {
    /** Prompt evaluation. */
    promptMs: number;
    /** From the end of the prompt to the end of generation: sampling and evaluations. */
    generateMs: number;
  };
}

/** Default for {@link GenerateOptions.maxTokens}. */
export const defaultMaxTokens = 256;

/**
 * Texts of end-of-turn tokens across DeepSeek-family and common chat vocabs: llama.cpp
 * treats a token with one of these texts as end-of-generation (src/llama-vocab.cpp,
 * special_eog_ids) whatever `tokenizer.ggml.eos_token_id` says.
 */
const endOfGenerationTexts = [
  '<｜end▁of▁sentence｜>', // DeepSeek V2, V3, R1
  '<|EOT|>', // DeepSeek-Coder instruct
  '<|im_end|>', // Kimi-K2, ChatML
  '<|endoftext|>',
  '<|eot_id|>',
];

const endOfGenerationCache = new WeakMap<Model, ReadonlySet<number>>();

/**
 * The tokens that end generation: `tokenizer.ggml.eos_token_id`, `eot_token_id` and
 * `eom_token_id` if present, and any token whose text is a known end of turn.
 */
export function endOfGenerationTokens(model: Model): ReadonlySet<number> {
  let set = endOfGenerationCache.get(model);
  if (set) return set;
  const tokenizer = model.tokenizer;
  const ids = new Set<number>();
  if (tokenizer.eosId !== undefined) ids.add(tokenizer.eosId);
  for (const key of ['tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id']) {
    const id = model.info.metadata.get(key);
    if (typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < tokenizer.vocabSize) ids.add(id);
  }
  for (const text of endOfGenerationTexts) {
    const id = tokenizer.tokenId(text);
    if (id !== undefined) ids.add(id);
  }
  set = ids;
  endOfGenerationCache.set(model, set);
  return set;
}

interface Checked {
  maxTokens: number;
  stops: string[];
  addBos: boolean | undefined;
  signal: AbortSignal | undefined;
  onToken: ((text: string, token: number) => void) | undefined;
  decodeSpecial: boolean;
  /** Tokens kept at the start on a context shift; undefined: no shift. */
  shiftKeep: number | undefined;
  sampling: SamplingOptions;
}

function checkOptions(options: GenerateOptions): Checked {
  if (options === null || typeof options !== 'object') throw invalidOption('options', 'an object', options);
  const maxTokens = options.maxTokens ?? defaultMaxTokens;
  if (maxTokens !== Infinity && (!Number.isInteger(maxTokens) || maxTokens < 0)) {
    throw invalidOption('maxTokens', 'an integer >= 0 or Infinity', maxTokens);
  }
  const stop = options.stop ?? [];
  const stops = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(stops) || stops.some((s) => typeof s !== 'string' || s === '')) {
    throw invalidOption('stop', 'a non-empty string or an array of them', stop);
  }
  const { addBos, signal, onToken } = options;
  if (addBos !== undefined && typeof addBos !== 'boolean') throw invalidOption('addBos', 'a boolean', addBos);
  // Duck-typed: an AbortSignal from another realm (vm, jest) is not `instanceof` this one's.
  if (signal !== undefined && (typeof signal?.aborted !== 'boolean' || typeof signal.throwIfAborted !== 'function')) {
    throw invalidOption('signal', 'an AbortSignal', typeof signal);
  }
  if (onToken !== undefined && typeof onToken !== 'function') throw invalidOption('onToken', 'a function', typeof onToken);
  const sampling = pickSamplingOptions(options);
  resolveSamplingOptions({ ...sampling, seed: sampling.seed ?? 0 }); // names a bad option before any work
  const decodeSpecial = options.decodeSpecial ?? false;
  if (typeof decodeSpecial !== 'boolean') throw invalidOption('decodeSpecial', 'a boolean', decodeSpecial);
  const shift = options.contextShift ?? false;
  let shiftKeep: number | undefined;
  if (shift === true) shiftKeep = 1;
  else if (shift !== false) {
    if (shift === null || typeof shift !== 'object') throw invalidOption('contextShift', 'a boolean or { keep }', shift);
    shiftKeep = shift.keep ?? 1;
    if (!Number.isInteger(shiftKeep) || shiftKeep < 0) throw invalidOption('contextShift.keep', 'an integer >= 0', shiftKeep);
  }
  return { maxTokens, stops: [...stops], addBos, signal, onToken, decodeSpecial, shiftKeep, sampling };
}

function promptTokens(context: Context, tokenizer: Tokenizer, prompt: string | readonly number[], addBos: boolean | undefined): number[] {
  if (typeof prompt === 'string') {
    return tokenizer.encode(prompt, { addBos: addBos ?? (tokenizer.addBosToken && context.nPast === 0), parseSpecial: true });
  }
  if (!Array.isArray(prompt)) throw invalidOption('prompt', 'a string or an array of token ids', typeof prompt);
  const nVocab = context.model.config.nVocab;
  prompt.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= nVocab) throw invalidOption(`prompt[${i}]`, `an integer in 0..${nVocab - 1}`, id);
  });
  return [...prompt];
}

/**
 * Holds back text that could be the start of a stop string, and finds the first stop
 * string in what it has seen. A stop string split across tokens is found once the token
 * that completes it arrives; nothing of it is released before.
 */
class StopMatcher {
  private held = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Adds text; returns what is safe to release, and whether a stop string was reached. */
  push(text: string): { text: string; stopped: boolean } {
    this.held += text;
    let first = -1;
    for (const stop of this.stops) {
      const at = this.held.indexOf(stop);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      const released = this.held.slice(0, first);
      this.held = '';
      return { text: released, stopped: true };
    }
    const keep = this.partialSuffix();
    const released = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { text: released, stopped: false };
  }

  /** Releases what is held (the stream ended without the stop string). */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }

  /** Length of the longest end of `held` that is a proper prefix of a stop string. */
  private partialSuffix(): number {
    let longest = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, this.held.length); n > longest; n--) {
        if (this.held.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}

/** Fills `result` as it goes: the stream's caller reads it once the stream ends. */
async function* run(context: Context, input: number[], o: Checked, result: GenerateResult): AsyncGenerator<string, void, undefined> {
  o.signal?.throwIfAborted();
  if (context.nPast + input.length > context.contextSize) {
    throw new ContextFullError(
      'CONTEXT_FULL',
      `the context holds ${context.contextSize} tokens: ${context.nPast} cached + a prompt of ${input.length} do not fit`,
    );
  }
  const tokenizer = context.model.tokenizer;
  const endOfGeneration = endOfGenerationTokens(context.model);
  const sampler = new Sampler(o.sampling);
  // llama.cpp's penalties see the prompt too (common_sampler_accept on each prompt token).
  sampler.acceptAll(input);
  const decoder = tokenizer.createStreamingDecoder({ special: o.decodeSpecial });
  const stops = new StopMatcher(o.stops);

  const started = performance.now();
  // One logits array for the whole loop: the sampler copies what it keeps.
  const logits = new Float32Array(context.model.config.nVocab);
  await context.evaluate(input, { signal: o.signal, output: logits });
  o.signal?.throwIfAborted();
  const promptDone = performance.now();
  result.promptTokens = input.length;
  result.timings.promptMs = promptDone - started;

  let stopReason: StopReason | undefined = o.maxTokens === 0 ? 'maxTokens' : undefined;
  while (stopReason === undefined) {
    const token = sampler.sample(logits);
    sampler.accept(token);
    result.tokens.push(token);
    let piece = '';
    if (endOfGeneration.has(token)) {
      stopReason = 'eos';
    } else {
      const step = stops.push(decoder.push(token));
      piece = step.text;
      if (step.stopped) stopReason = 'stop';
      else if (result.tokens.length >= o.maxTokens) stopReason = 'maxTokens';
      // The token just sampled has no room in the cache: it is the last.
      else if (context.nPast >= context.contextSize) {
        const keep = o.shiftKeep === undefined ? undefined : Math.min(o.shiftKeep, context.nPast - 2);
        if (keep === undefined || keep < 0) stopReason = 'contextFull';
        else await context.shift(keep, Math.max(1, Math.floor((context.nPast - keep) / 2)));
      }
    }
    if (stopReason !== undefined && stopReason !== 'stop') {
      // The end: release the bytes of an unfinished character (as U+FFFD) and held text.
      const end = stops.push(decoder.flush());
      piece += end.text;
      if (end.stopped) stopReason = 'stop';
      else piece += stops.flush();
    }
    result.text += piece;
    o.onToken?.(piece, token);
    if (piece !== '') yield piece;
    if (stopReason !== undefined) break;
    // The consumer may have aborted while it held the piece: stop before evaluating.
    o.signal?.throwIfAborted();
    await context.evaluate([token], { signal: o.signal, output: logits });
    o.signal?.throwIfAborted();
  }
  result.stopReason = stopReason;
  result.generatedTokens = result.tokens.length;
  result.timings.generateMs = performance.now() - promptDone;
}

function emptyResult(): GenerateResult {
  return {
    text: '',
    tokens: [],
    stopReason: 'maxTokens',
    promptTokens: 0,
    generatedTokens: 0,
    timings: { promptMs: 0, generateMs: 0 },
  };
}

/** Checks everything and tokenizes the prompt before any evaluation. */
function prepare(context: Context, prompt: string | readonly number[], options: GenerateOptions): { input: number[]; checked: Checked } {
  if (context.disposed) throw new DisposedError('Context');
  const checked = checkOptions(options);
  const input = promptTokens(context, context.model.tokenizer, prompt, checked.addBos);
  if (input.length === 0) throw invalidOption('prompt', 'at least one token', 0);
  return { input, checked };
}

/**
 * Streams the continuation of `prompt` as text pieces (whole UTF-8 characters, never a
 * stop string or its start). Options are checked, and a string prompt tokenized (special
 * tokens parsed), when called; the evaluation starts with the first `next()`.
 * @internal use context.generate
 */
export function generate(context: Context, prompt: string | readonly number[], options: GenerateOptions = {}): AsyncIterable<string> {
  const { input, checked } = prepare(context, prompt, options);
  return run(context, input, checked, emptyResult());
}

/** @internal use context.generateText */
export async function generateText(context: Context, prompt: string | readonly number[], options: GenerateOptions = {}): Promise<GenerateResult> {
  const { input, checked } = prepare(context, prompt, options);
  const result = emptyResult();
  for await (const piece of run(context, input, checked, result)) void piece;
  return result;
}
