#!/usr/bin/env node
'use strict';
/**
 * Perplexity of a GGUF on the held-out split, computed by deepmla: consecutive windows of
 * the context's length, each led by BOS (as in training), every token of the window scored.
 *
 *   node perplexity.js DATA_DIR MODEL.gguf [MAX_WINDOWS]
 */
const fs = require('node:fs');
const path = require('node:path');

const { loadModel } = require(path.join(__dirname, '..', '..', 'dist'));

async function main() {
  const [dataDir, file, maxWindowsText] = process.argv.slice(2);
  if (!dataDir || !file) {
    console.error('usage: node perplexity.js DATA_DIR MODEL.gguf [MAX_WINDOWS]');
    process.exit(2);
  }
  const raw = fs.readFileSync(path.join(dataDir, 'heldout.u16'));
  const tokens = new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2);
  const model = await loadModel(file);
  const n = model.config.contextLength;
  const nVocab = model.config.nVocab;
  const bos = model.tokenizer.bosId;
  const windows = Math.min(Number(maxWindowsText ?? Infinity), Math.floor(tokens.length / n));
  const context = await model.createContext({ contextSize: n });
  let nll = 0;
  let count = 0;
  for (let w = 0; w < windows; w++) {
    const target = Array.from(tokens.subarray(w * n, (w + 1) * n));
    await context.truncate(0);
    const logits = await context.evaluate([bos, ...target.slice(0, -1)], { logits: 'all' });
    for (let i = 0; i < n; i++) {
      const row = logits.subarray(i * nVocab, (i + 1) * nVocab);
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - max);
      nll += Math.log(sum) + max - row[target[i]];
      count++;
    }
  }
  await context.dispose();
  model.dispose();
  console.log(`${path.basename(file)}: ${windows} windows of ${n} held-out tokens, mean NLL ${(nll / count).toFixed(4)}, perplexity ${Math.exp(nll / count).toFixed(2)}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
