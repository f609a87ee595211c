/**
 * Options shared by `run` and `chat`: sampling (llama-cli's names and defaults), the
 * context, and loading the model with a progress bar on stderr.
 */
import { Command, Option } from 'commander';
import * as cliProgress from 'cli-progress';

import { ContextOptions } from '../api/Context';
import { defaultModelPath } from '../api/defaultModel';
import { GenerateOptions, defaultMaxTokens } from '../api/generate';
import { Model, loadModel } from '../api/Model';
import { invalidOption } from '../errors';
import { CacheType, MlaMode } from '../model/attentionMode';
import { samplingDefaults } from '../sampling';
import { cacheType, integer, mla, nonNegative, onOff } from './options';

export interface GenerationCliOptions {
  maxTokens: number;
  temp: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  repeatLastN: number;
  presencePenalty: number;
  frequencyPenalty: number;
  seed?: number;
  stop: string[];
  ctx?: number;
  mla: MlaMode;
  fa: boolean;
  ctk: CacheType;
  threads?: number;
  mmap: boolean;
}

function fraction(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !(n >= 0 && n <= 1)) throw invalidOption(name, 'a number in [0, 1]', value);
    return n;
  };
}

function finite(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw invalidOption(name, 'a number', value);
    return n;
  };
}

function positive(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !(n > 0) || !Number.isFinite(n)) throw invalidOption(name, 'a number > 0', value);
    return n;
  };
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Adds the sampling and context options to a command. */
export function addGenerationOptions(command: Command, maxTokensDefault = defaultMaxTokens): Command {
  const d = samplingDefaults;
  return command
    .option('-n, --max-tokens <n>', 'tokens to generate at most; -1: until the context is full', integer('--max-tokens', -1), maxTokensDefault)
    .option('--temp <t>', 'temperature; 0 = greedy', nonNegative('--temp'), d.temperature)
    .option('--top-k <k>', 'keep the k most likely tokens; 0 = off', integer('--top-k', 0), d.topK)
    .option('--top-p <p>', 'keep the most likely tokens up to probability p; 1 = off', fraction('--top-p'), d.topP)
    .option('--min-p <p>', 'keep tokens at least p times as likely as the best; 0 = off', fraction('--min-p'), d.minP)
    .option('--repeat-penalty <x>', 'penalise tokens of the last --repeat-last-n; 1 = off', positive('--repeat-penalty'), d.repeatPenalty)
    .option('--repeat-last-n <n>', 'tokens the penalties look back at; 0 = none', integer('--repeat-last-n', 0, 1 << 24), d.penaltyLastN)
    .option('--presence-penalty <x>', 'subtracted from the logit of a token seen; 0 = off', finite('--presence-penalty'), d.presencePenalty)
    .option('--frequency-penalty <x>', 'subtracted once per time a token was seen; 0 = off', finite('--frequency-penalty'), d.frequencyPenalty)
    .option('--seed <n>', 'sampling seed, 0..4294967295 (default: random, printed on stderr)', integer('--seed', 0, 0xffffffff))
    .addOption(new Option('--stop <text>', 'stop before this text (repeatable)').argParser(collect).default([], 'none'))
    .option('--ctx <n>', "context size in tokens (default: the model's, at most 4096)", integer('--ctx', 1, 1 << 24))
    .option('--mla <n>', 'MLA mode 0-3', mla, 3)
    .addOption(new Option('--fa <on|off>', 'flash attention').argParser(onOff('--fa')).default(true, 'on'))
    .option('--ctk <type>', 'K cache type: f16, bf16, q8_0, q8_KV, q6_0', cacheType('--ctk'), 'f16')
    .option('--threads <n>', 'threads (default: all cores)', integer('--threads', 1, 1024))
    .option('--no-mmap', 'read the weights into memory instead of mapping the file (faster generation, slower load)');
}

export function generateOptionsFrom(o: GenerationCliOptions, seed: number): GenerateOptions {
  return {
    maxTokens: o.maxTokens < 0 ? Infinity : o.maxTokens,
    temperature: o.temp,
    topK: o.topK,
    topP: o.topP,
    minP: o.minP,
    repeatPenalty: o.repeatPenalty,
    penaltyLastN: o.repeatLastN,
    presencePenalty: o.presencePenalty,
    frequencyPenalty: o.frequencyPenalty,
    seed,
    stop: o.stop,
  };
}

export function contextOptionsFrom(o: GenerationCliOptions): ContextOptions {
  return { contextSize: o.ctx, mla: o.mla, flashAttention: o.fa, cacheType: o.ctk, threads: o.threads };
}

/** Loads `path` (or the embedded default model), with a progress bar when stderr is a terminal. */
export async function loadWithProgress(path: string | undefined, mmap = true, signal?: AbortSignal): Promise<Model> {
  const modelPath = path ?? defaultModelPath();
  if (!process.stderr.isTTY) return loadModel(modelPath, { signal, mmap });
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: 'loading {bar} {percentage}%', hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(100, 0);
  try {
    return await loadModel(modelPath, { signal, mmap, onProgress: (f) => bar.update(Math.round(f * 100)) });
  } finally {
    bar.stop();
  }
}

/** tokens/s, for the speed lines on stderr. */
export function rate(tokens: number, ms: number): string {
  return ms > 0 ? (tokens / (ms / 1000)).toFixed(2) : '-';
}
