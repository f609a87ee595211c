/**
 * The forward pass against the exact float64 references of shared/fixtures, in every
 * attention mode: mla 0-3 x flash attention x K-cache type, with and without amb where
 * K*Q is materialised, within the README's bounds (median KL and outlier fraction).
 */
import { loadModel, Model } from '../lib';
import { CacheType, cacheTypes } from '../lib/model/attentionMode';
import { compareLogits, readLogitsFile } from '../lib/eval/compareLogits';
import { readTokenFile, teacherForcedLogits } from '../lib/eval/teacherForced';
import { Fixture, fixturePath, readManifest } from './helpers/fixtures';

interface Mode {
  mla: 0 | 1 | 2 | 3;
  flashAttention: boolean;
  cacheType: CacheType;
  amb: number;
}

// Under ASan + UBSan (tools/sanitize.sh sets DEEPMLA_SANITIZED) the matrix runs 3-10x
// slower: there every mode runs with one exact and one quantized cache type, the non-flash
// ones with amb only, and the long fixture in one mode; the normal run checks everything.
const sanitized = process.env.DEEPMLA_SANITIZED === '1';

function modes(fixture?: Fixture): Mode[] {
  const out: Mode[] = [];
  const long = fixture !== undefined && fixture.n_prompt > 512;
  for (const mla of [0, 1, 2, 3] as const)
    for (const flashAttention of [false, true])
      for (const cacheType of sanitized ? (['f16', 'q8_KV'] as const) : cacheTypes)
        // amb only changes the non-flash paths, where K*Q is materialised (under the
        // sanitizers only split into head groups: the loop amb 0 runs once over all heads).
        for (const amb of flashAttention ? [0] : sanitized ? [0.25] : [0, 0.25]) {
          if (sanitized && long && !(mla === 3 && flashAttention && cacheType === 'f16')) continue;
          out.push({ mla, flashAttention, cacheType, amb });
        }
  return out;
}

const label = (m: Mode): string => `mla${m.mla}-fa${m.flashAttention ? 1 : 0}-${m.cacheType}${m.amb ? `-amb${m.amb}` : ''}`;

const manifest = readManifest();

(sanitized ? test.skip : test)('the mode matrix covers every ik_llama.cpp mode of the manifest', () => {
  const covered = new Set(modes().map((m) => `mla${m.mla}-fa${m.flashAttention ? 1 : 0}-${m.cacheType}`));
  for (const f of manifest.fixtures)
    for (const mode of Object.keys(f.ik_llama_cpp)) expect(covered).toContain(mode.replace(/-ub\d+$/, ''));
});

describe.each(manifest.fixtures.map((f) => [f.name, f] as [string, Fixture]))('%s', (_name, fixture) => {
  let model: Model;
  const tokens = readTokenFile(fixturePath(fixture.tokens));
  const exact = readLogitsFile(fixturePath(fixture.exact));

  beforeAll(async () => {
    model = await loadModel(fixturePath(fixture.model));
  });
  afterAll(() => model?.dispose());

  async function run(mode: Mode, extra: { batchSize?: number; decompressMinTokens?: number } = {}) {
    const context = await model.createContext({
      contextSize: fixture.n_prompt + fixture.n_generated,
      threads: 2,
      batchSize: extra.batchSize ?? fixture.ubatch,
      decompressMinTokens: extra.decompressMinTokens,
      ...mode,
    });
    try {
      return compareLogits(exact, await teacherForcedLogits(context, tokens), manifest.n_vocab);
    } finally {
      await context.dispose();
    }
  }

  test.each(modes(fixture).map((m) => [label(m), m] as [string, Mode]))('%s within bounds', async (_label, mode) => {
    const result = await run(mode);
    const bound = fixture.bounds[mode.cacheType];
    expect(result.finite).toBe(true);
    expect(result.rows).toBe(fixture.n_prompt + fixture.n_generated);
    expect(result.klMedian).toBeLessThanOrEqual(bound.kld_median);
    expect(result.outlierFraction).toBeLessThanOrEqual(bound.outlier_fraction);
  });

  // A legacy file (attn_kv_b) gets the split tensors of the absorbed modes derived at
  // context creation: attn_k_b transposed into F16 (F32 from F32), attn_v_b a view of
  // kv_b's own rows in their own type, read in place (the bounds above hold mla 2 to it).
  (fixture.model.includes('legacy') ? test : test.skip)('derived attn_k_b is F16 or F32, attn_v_b is attn_kv_b\'s type', async () => {
    const context = await model.createContext({ contextSize: 16, threads: 2, mla: 2 });
    await context.dispose();
    for (const p of ['blk.0.', 'blk.1.']) {
      const kvB = model.weights.get(`${p}attn_kv_b.weight`)!;
      expect(model.weights.get(`${p}attn_v_b.weight`)?.type).toBe(kvB.type);
      expect(model.weights.get(`${p}attn_k_b.weight`)?.type).toBe(kvB.type === 'F32' ? 'F32' : 'F16');
    }
  });

  // The short prompts stay below mla 3's decompression threshold at the default; these
  // runs take the decompressed path for the prompt and several micro-batches. (With a
  // Q8_0 cache and Q8_0-activation weights the cache rows are read in place; with flash
  // and any quantized cache, AVX512-BF16 CPUs do P V in bf16.)
  // Under the sanitizers the long fixture (63 micro-batches, ~22 s a case there) runs one.
  const decompressedCases = [
    ['f16', false],
    ['f16', true],
    ['q8_0', false],
    ['q8_0', true],
    ['q8_KV', true],
    ['q6_0', true],
  ] as const;
  const decompressed = sanitized && fixture.n_prompt > 512 ? decompressedCases.slice(1, 2) : decompressedCases;
  test.each(decompressed)('mla3 decompressed prompt in micro-batches of 16, %s cache, flash %s', async (cacheType, flashAttention) => {
    const result = await run({ mla: 3, flashAttention, cacheType, amb: 0 }, { batchSize: 16, decompressMinTokens: 2 });
    expect(result.klMedian).toBeLessThanOrEqual(fixture.bounds[cacheType].kld_median);
    expect(result.outlierFraction).toBeLessThanOrEqual(fixture.bounds[cacheType].outlier_fraction);
  });

  // With logits for the last token only, the last layer runs its queries, attention,
  // output projection and FFN for that token alone (queryOffset: it sees the micro-batch's
  // other rows through the cache). Its logits are the all-logits graph's last row: bit for
  // bit with f32 weights; with quantized ones the activations are rounded at other points
  // (mla 3: absorbed instead of decompressed), well within the fixture's bound.
  // Under the sanitizers: mla 0 (standard attention) and 3 (decompressed, and absorbed for
  // the single row) with flash and a Q8_0 cache.
  const lastTokenModes = ([0, 1, 2, 3] as const).flatMap((mla) =>
    [false, true].flatMap((fa) => cacheTypes.map((c) => [mla, fa, c] as const)),
  );
  (fixture.n_prompt > 512 ? test.skip : test).each(
    sanitized ? lastTokenModes.filter(([mla, fa, c]) => mla % 3 === 0 && fa && c === 'q8_0') : lastTokenModes,
  )('last-token logits equal the last row of all, mla %d, flash %s, %s cache', async (mla, flashAttention, cacheType) => {
    const prompt = tokens.prompt;
    const evaluate = async (logits: 'all' | 'last'): Promise<Float32Array> => {
      const context = await model.createContext({
        contextSize: prompt.length,
        threads: 2,
        batchSize: 16,
        decompressMinTokens: 2,
        mla,
        flashAttention,
        cacheType,
      });
      try {
        return await context.evaluate(prompt, { logits });
      } finally {
        await context.dispose();
      }
    };
    const all = await evaluate('all');
    const last = await evaluate('last');
    expect(last.length).toBe(manifest.n_vocab);
    const result = compareLogits(all.subarray(all.length - manifest.n_vocab), last, manifest.n_vocab);
    expect(result.finite).toBe(true);
    expect(result.klMedian).toBeLessThanOrEqual(fixture.bounds[cacheType].kld_median);
  });
});
