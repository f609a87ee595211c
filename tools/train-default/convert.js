#!/usr/bin/env node
'use strict';
/**
 * Converts a training checkpoint (train.py) to a deepseek2 GGUF the way deepmla reads any
 * DeepSeek file: llama.cpp's key and tensor names, the split attn_k_b / attn_v_b layout,
 * weights quantized to Q8_0 by deepmla's own quantizer (norms and router stay F32).
 *
 *   node convert.js DATA_DIR CHECKPOINT OUT.gguf [--type Q8_0]
 */
const fs = require('node:fs');
const path = require('node:path');

const { synthesizeModel } = require(path.join(__dirname, '..', '..', 'dist', 'model', 'synthesize'));

function readCheckpoint(file) {
  const raw = fs.readFileSync(file);
  if (raw.toString('latin1', 0, 8) !== 'DMLACKPT') throw new Error(`${file}: not a deepmla training checkpoint`);
  const length = Number(raw.readBigUInt64LE(8));
  const header = JSON.parse(raw.toString('utf8', 16, 16 + length));
  const start = Math.ceil((16 + length) / 32) * 32;
  const tensors = new Map();
  for (const info of header.tensors) {
    const count = info.shape.reduce((a, b) => a * b, 1);
    const bytes = raw.subarray(start + info.offset, start + info.offset + count * 4);
    if (bytes.length !== count * 4) throw new Error(`${file}: tensor ${info.name} is truncated`);
    // Copy: the offset need not be 4-aligned within the Buffer pool.
    tensors.set(info.name, { shape: info.shape, values: new Float32Array(Uint8Array.from(bytes).buffer) });
  }
  return { header, tensors };
}

async function main() {
  const args = process.argv.slice(2);
  const typeIndex = args.indexOf('--type');
  const type = typeIndex >= 0 ? args.splice(typeIndex, 2)[1] : 'Q8_0';
  const [dataDir, checkpoint, out] = args;
  if (!dataDir || !checkpoint || !out) {
    console.error('usage: node convert.js DATA_DIR CHECKPOINT OUT.gguf [--type Q8_0]');
    process.exit(2);
  }
  const vocab = JSON.parse(fs.readFileSync(path.join(dataDir, 'vocab.json'), 'utf8'));
  const { header, tensors } = readCheckpoint(checkpoint);
  const c = header.config;
  const weights = (name, shape) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`checkpoint has no tensor ${name}`);
    if (t.shape.join() !== shape.join()) throw new Error(`${name}: checkpoint shape [${t.shape}] but the GGUF wants [${shape}]`);
    return t.values;
  };
  for (const [key, expected] of [['kv_lora_rank', 512], ['rope_dim', 64], ['nope_dim', 128], ['v_head_dim', 128]]) {
    if (c[key] !== expected) throw new Error(`config ${key} is ${c[key]}; deepseek2 files have ${expected}`);
  }
  const result = await synthesizeModel(out, {
    name: 'deepmla-default-brown',
    type,
    layout: 'split',
    nLayer: c.n_layer,
    nVocab: vocab.tokens.length,
    nEmbd: c.n_embd,
    nHead: c.n_head,
    nExpert: c.n_expert,
    nExpertUsed: c.n_expert_used,
    nExpertShared: c.n_expert_shared,
    expertFfnDim: c.expert_ffn_dim,
    ffnDim: c.ffn_dim,
    nLeadingDense: c.n_leading_dense,
    contextLength: c.context_length,
    ropeScaling: false,
    weights,
    vocab,
  });
  console.log(`${out}: ${(result.fileSize / 2 ** 20).toFixed(2)} MiB, ${result.tensorCount} tensors (step ${header.meta.step}, held-out loss ${header.meta.heldout_loss.toFixed(3)})`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
