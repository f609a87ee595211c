/**
 * Model-level errors of loadModel: one test per error on a real malformed file (a fixture
 * re-written with one thing broken), asserting the class and `code`, never the message.
 */
import * as path from 'path';

import { GgufError, IoError, UnsupportedError } from '../lib/errors';
import { GgufTensorType } from '../lib/gguf/tensorType';
import { loadModel } from '../lib';
import { ModelEdits, TempDir, fixtureModel, fixturesDir, writeEditedModel, writeTruncatedModel } from './helpers/deepseekFixture';
import { rejection } from './helpers/errors';

// Split (q_lora, attn_k_b/attn_v_b) and legacy (attn_q, attn_kv_b) layouts take different
// branches of the tensor check; f32 files let a tensor be retyped without changing its size.
const splitModel = fixtureModel('v3-split.f32.gguf');
const legacyModel = fixtureModel('v2lite-legacy.q8_0.gguf');

async function expectLoadError(file: string, Class: new (...args: never[]) => Error, code: string): Promise<void> {
  const error = await rejection(loadModel(file));
  expect(error).toBeInstanceOf(Class);
  expect((error as { code?: unknown }).code).toBe(code);
}

describe('loadModel on malformed models', () => {
  const dir = new TempDir();
  afterAll(() => dir.remove());

  const edited = (edits: ModelEdits, source = splitModel): Promise<string> => writeEditedModel(source, dir, edits);

  it.each([splitModel, legacyModel].map((file) => [path.basename(file), file]))('loads an unedited rewrite of %s (the helper keeps models valid)', async (_name, source) => {
    const model = await loadModel(await edited({}, source));
    try {
      const original = await loadModel(source);
      try {
        expect(model.config).toEqual(original.config);
        const contexts = await Promise.all([model, original].map((m) => m.createContext({ contextSize: 256, threads: 2, mla: 2 })));
        try {
          const [a, b] = await Promise.all(contexts.map((c) => c.evaluate([1, 2, 3])));
          expect(a).toEqual(b);
        } finally {
          await Promise.all(contexts.map((c) => c.dispose()));
        }
      } finally {
        original.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it.each(['deepseek2.block_count', 'deepseek2.attention.kv_lora_rank', 'deepseek2.attention.layer_norm_rms_epsilon'])(
    'GGUF_MISSING_KEY: %s',
    async (key) => {
      await expectLoadError(await edited({ dropKeys: [key] }), GgufError, 'GGUF_MISSING_KEY');
    },
  );

  it('GGUF_MISSING_KEY: general.architecture', async () => {
    await expectLoadError(await edited({ dropKeys: ['general.architecture'] }), GgufError, 'GGUF_MISSING_KEY');
  });

  it('GGUF_BAD_VALUE: block_count as a string', async () => {
    const file = await edited({ setKeys: { 'deepseek2.block_count': { type: 'string', value: '3' } } });
    await expectLoadError(file, GgufError, 'GGUF_BAD_VALUE');
  });

  it('GGUF_BAD_VALUE: kv_lora_rank as a float', async () => {
    const file = await edited({ setKeys: { 'deepseek2.attention.kv_lora_rank': { type: 'float32', value: 512 } } });
    await expectLoadError(file, GgufError, 'GGUF_BAD_VALUE');
  });

  it('GGUF_BAD_VALUE: block_count 0', async () => {
    await expectLoadError(await edited({ setKeys: { 'deepseek2.block_count': { type: 'uint32', value: 0 } } }), GgufError, 'GGUF_BAD_VALUE');
  });

  it('GGUF_BAD_VALUE: expert_used_count > expert_count', async () => {
    // The fixture has expert_count 8.
    const file = await edited({ setKeys: { 'deepseek2.expert_used_count': { type: 'uint32', value: 9 } } });
    await expectLoadError(file, GgufError, 'GGUF_BAD_VALUE');
  });

  it('GGUF_MISSING_TENSOR: blk.1.ffn_gate_exps.weight', async () => {
    await expectLoadError(await edited({ dropTensors: ['blk.1.ffn_gate_exps.weight'] }), GgufError, 'GGUF_MISSING_TENSOR');
  });

  it('GGUF_MISSING_TENSOR: token_embd.weight', async () => {
    await expectLoadError(await edited({ dropTensors: ['token_embd.weight'] }), GgufError, 'GGUF_MISSING_TENSOR');
  });

  it('GGUF_MISSING_TENSOR: blk.2.attn_kv_b.weight of a legacy model', async () => {
    // blk.0 decides the layout, so a later layer missing its attn_kv_b is caught by name.
    await expectLoadError(await edited({ dropTensors: ['blk.2.attn_kv_b.weight'] }, legacyModel), GgufError, 'GGUF_MISSING_TENSOR');
  });

  it('GGUF_BAD_SHAPE: ffn_gate_exps with 4 experts instead of 8', async () => {
    const file = await edited({ reshapeTensors: { 'blk.1.ffn_gate_exps.weight': [128, 64, 4] } });
    await expectLoadError(file, GgufError, 'GGUF_BAD_SHAPE');
  });

  it('GGUF_BAD_SHAPE: attn_k_b as a 2-D tensor', async () => {
    const file = await edited({ reshapeTensors: { 'blk.0.attn_k_b.weight': [128, 2048] } });
    await expectLoadError(file, GgufError, 'GGUF_BAD_SHAPE');
  });

  it("UNSUPPORTED_ARCHITECTURE: architecture 'llama'", async () => {
    await expectLoadError(await edited({ architecture: 'llama' }), UnsupportedError, 'UNSUPPORTED_ARCHITECTURE');
  });

  it('UNSUPPORTED_ARCHITECTURE: a vocab-only GGUF', async () => {
    const vocabOnly = path.join(fixturesDir, 'tokenizer', 'ggml-vocab-deepseek-v3.gguf');
    await expectLoadError(vocabOnly, UnsupportedError, 'UNSUPPORTED_ARCHITECTURE');
  });

  it('UNSUPPORTED: token_embd as I32 (a type the reader knows, with no matmul kernel)', async () => {
    // Same shape and byte size as the f32 original.
    const file = await edited({ retypeTensors: { 'token_embd.weight': { typeId: GgufTensorType.I32 } } });
    await expectLoadError(file, UnsupportedError, 'UNSUPPORTED');
  });

  it('UNSUPPORTED: a norm weight stored as F16 (norms must be F32)', async () => {
    const file = await edited({ retypeTensors: { 'blk.0.attn_norm.weight': { typeId: GgufTensorType.F16 } } });
    await expectLoadError(file, UnsupportedError, 'UNSUPPORTED');
  });

  it('IO_ERROR: missing file', async () => {
    await expectLoadError(path.join(dir.path, 'does-not-exist.gguf'), IoError, 'IO_ERROR');
  });

  it('GGUF_TENSOR_OUT_OF_BOUNDS: a copy cut in the data section', async () => {
    await expectLoadError(await writeTruncatedModel(splitModel, dir), GgufError, 'GGUF_TENSOR_OUT_OF_BOUNDS');
  });

  it('GGUF_TENSOR_OUT_OF_BOUNDS: a copy cut in the middle of the data section', async () => {
    await expectLoadError(await writeTruncatedModel(splitModel, dir, 4 << 20), GgufError, 'GGUF_TENSOR_OUT_OF_BOUNDS');
  });
});
