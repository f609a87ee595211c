/**
 * The embedded default model (models/, trained by tools/train-default): it ships in the
 * package, loads with no path, computes what its training code computed, and writes
 * English words at a rate neither random tokens nor the same network with random weights
 * reach.
 */
import * as fs from 'fs';
import * as path from 'path';
import { gunzipSync } from 'zlib';

import { Model, compareLogits, defaultModelPath, loadDefaultModel, loadModel, readLogitsFile } from '../lib';
import { synthesizeModel } from '../lib/model/synthesize';
import { TempDir } from './helpers/malformed';

const referenceDir = path.join(__dirname, 'fixtures', 'default-model');
const threads = 2;

/** Every word of SCOWL's American English list (Debian wamerican), lowercased. */
const englishWords: ReadonlySet<string> = new Set(
  gunzipSync(fs.readFileSync(path.join(__dirname, 'fixtures', 'words', 'english.txt.gz'))).toString('utf8').split('\n').filter(Boolean),
);

interface WordStats {
  words: number;
  known: number;
  distinctKnown: number;
  rate: number;
}

function wordStats(text: string): WordStats {
  const words = (text.match(/[A-Za-z]+(?:'[A-Za-z]+)*/g) ?? []).map((w) => w.toLowerCase());
  const known = words.filter((w) => englishWords.has(w));
  return { words: words.length, known: known.length, distinctKnown: new Set(known).size, rate: words.length ? known.length / words.length : 0 };
}

/**
 * Reads as English: nearly every word is a dictionary word, and not a handful of words
 * repeated. (Plain greedy decoding of a model this small settles into a loop of one
 * phrase, "and the world, and the world": the distinct-word floor is set for that.)
 */
function readsAsEnglish(s: WordStats, minDistinctKnown: number): boolean {
  return s.words >= 24 && s.rate >= 0.9 && s.distinctKnown >= minDistinctKnown;
}

const prompts = ['Once upon a time', 'The president of the United States', 'In the morning, she'];

/** 32 tokens after each prompt, decoded greedily (argmax), joined. */
async function greedyTexts(model: Model, options: { repeatPenalty?: number } = {}): Promise<string> {
  const texts: string[] = [];
  for (const prompt of prompts) {
    const context = await model.createContext({ threads });
    try {
      const result = await context.generateText(prompt, { maxTokens: 32, temperature: 0, ...options });
      expect(result.generatedTokens).toBe(32);
      texts.push(result.text);
    } finally {
      await context.dispose();
    }
  }
  return texts.join('\n');
}

function verdict(text: string, minDistinctKnown: number): string {
  const stats = wordStats(text);
  return readsAsEnglish(stats, minDistinctKnown) ? 'English' : `not English: ${JSON.stringify({ text, ...stats })}`;
}

describe('embedded default model', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadDefaultModel();
  });
  afterAll(() => model.dispose());

  test('ships in the package: a few MB under models/, listed in package.json files', () => {
    const file = defaultModelPath();
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('models/');
    expect(path.relative(path.join(__dirname, '..'), file)).toMatch(/^models\//);
    expect(fs.statSync(file).size).toBeLessThan(10 * 2 ** 20);
  });

  test('is a deepseek2 with the real MLA sizes, MoE with a shared expert, a dense first block, split k_b/v_b', () => {
    const c = model.config;
    expect([c.kvLoraRank, c.ropeDim, c.nopeDim, c.vHeadDim]).toEqual([512, 64, 128, 128]);
    expect(c.nLeadingDense).toBe(1);
    expect(c.nLayer).toBeGreaterThan(1);
    expect(c.nExpertShared).toBeGreaterThanOrEqual(1);
    expect(c.nExpertUsed).toBeLessThan(c.nExpert);
    const names = new Set(model.info.tensors.map((t) => t.name));
    expect(names.has('blk.1.attn_k_b.weight') && names.has('blk.1.attn_v_b.weight')).toBe(true);
    expect(names.has('blk.1.attn_kv_b.weight')).toBe(false);
    expect(names.has('blk.1.ffn_gate_shexp.weight')).toBe(true);
    expect(model.info.tensors.find((t) => t.name === 'blk.1.attn_q.weight')?.type).toBe('q8_0');
  });

  // reference.tokens.json / reference.logits: the float32 training checkpoint run by the
  // training code itself (tools/train-default/reference.py) over held-out text.
  test.each([
    [1, false],
    [1, true],
    [2, false],
    [3, true],
  ] as const)('gives the training code\'s logits (mla %d, fa %s; Q8_0 weights vs float32)', async (mla, flashAttention) => {
    const tokens = JSON.parse(fs.readFileSync(path.join(referenceDir, 'reference.tokens.json'), 'utf8')) as number[];
    const reference = readLogitsFile(path.join(referenceDir, 'reference.logits'));
    const context = await model.createContext({ threads, mla, flashAttention, cacheType: 'f16' });
    try {
      const logits = await context.evaluate(tokens, { logits: 'all' });
      const c = compareLogits(reference, logits, model.config.nVocab);
      expect(c.rows).toBe(tokens.length);
      expect(c.finite).toBe(true);
      expect(c.klMedian).toBeLessThan(2e-3);
      expect(c.klMax).toBeLessThan(2e-2);
      expect(c.top1).toBeGreaterThanOrEqual(0.9);
    } finally {
      await context.dispose();
    }
  });

  test('writes English words when decoded greedily (32 tokens after each of 3 prompts)', async () => {
    expect(verdict(await greedyTexts(model), 8)).toBe('English');
  });

  test('with llama.cpp\'s repetition penalty (1.3), greedy text uses a wide vocabulary of English words', async () => {
    expect(verdict(await greedyTexts(model, { repeatPenalty: 1.3 }), 24)).toBe('English');
  });

  test('the English check fails for uniformly random tokens of the same vocabulary', () => {
    let state = 12345;
    const next = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state;
    };
    const tokenizer = model.tokenizer;
    for (let trial = 0; trial < 5; trial++) {
      const ids = Array.from({ length: 96 }, () => next() % (tokenizer.vocabSize - 2));
      expect(verdict(tokenizer.decode(ids), 8)).not.toBe('English');
    }
  });

  test('the English check fails for the same network with random weights (3 seeds)', async () => {
    const dir = new TempDir();
    try {
      const c = model.config;
      const meta = model.info.metadata;
      const file = path.join(dir.path, 'random.gguf');
      for (const seed of [1, 2, 3]) {
        await synthesizeModel(file, {
          seed, nLayer: c.nLayer, nVocab: c.nVocab, nEmbd: c.nEmbd, nHead: c.nHead, nExpert: c.nExpert,
          nExpertUsed: c.nExpertUsed, nExpertShared: c.nExpertShared, expertFfnDim: c.expertFfnDim,
          ffnDim: c.ffnDim, nLeadingDense: c.nLeadingDense, contextLength: c.contextLength, ropeScaling: false,
          layout: 'split',
          vocab: {
            pre: meta.get('tokenizer.ggml.pre') as string,
            tokens: meta.get('tokenizer.ggml.tokens') as string[],
            types: meta.get('tokenizer.ggml.token_type') as number[],
            merges: meta.get('tokenizer.ggml.merges') as string[],
            bosId: meta.get('tokenizer.ggml.bos_token_id') as number,
            eosId: meta.get('tokenizer.ggml.eos_token_id') as number,
          },
        });
        const random = await loadModel(file);
        try {
          expect(verdict(await greedyTexts(random), 8)).not.toBe('English');
          expect(verdict(await greedyTexts(random, { repeatPenalty: 1.3 }), 24)).not.toBe('English');
        } finally {
          random.dispose();
        }
      }
    } finally {
      dir.remove();
    }
  });
});
