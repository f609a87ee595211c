#!/usr/bin/env node
'use strict';
/**
 * Learns a byte-level BPE vocabulary on the training documents with deepmla's own
 * deepseek-v3 pre-tokenizer (so training and inference cut words identically), then
 * encodes both splits with deepmla's Tokenizer.
 *
 *   node bpe.js DATA_DIR VOCAB_SIZE
 *     reads  DATA_DIR/train.jsonl, DATA_DIR/heldout.jsonl (corpus.js)
 *     writes DATA_DIR/vocab.json, DATA_DIR/train.u16, DATA_DIR/heldout.u16
 *
 * A .u16 file is the documents' tokens, little-endian uint16, each document preceded by
 * BOS and followed by EOS. Merges are chosen by count, ties by the pair's ids, so the
 * vocabulary is the same on every run.
 */
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', '..', 'dist');
const { createPreTokenizer } = require(path.join(dist, 'tokenizer', 'preTokenizers'));
const { byteToChar, utf8Encode } = require(path.join(dist, 'tokenizer', 'byteLevel'));
const { Tokenizer } = require(path.join(dist, 'tokenizer', 'Tokenizer'));

const preTokenizerName = 'deepseek-v3';
const bosText = '<｜begin▁of▁sentence｜>';
const eosText = '<｜end▁of▁sentence｜>';

function readDocuments(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
}

/** Word -> count over all documents. */
function countWords(documents) {
  const pre = createPreTokenizer(preTokenizerName);
  const counts = new Map();
  for (const doc of documents) for (const word of pre.split(doc)) counts.set(word, (counts.get(word) ?? 0) + 1);
  return counts;
}

function learnMerges(wordCounts, nMerges) {
  const tokens = byteToChar.slice(); // id -> text; ids 0..255 are the bytes
  const words = []; // { symbols: number[], count }
  for (const [word, count] of wordCounts) words.push({ symbols: Array.from(utf8Encode(word)), count });

  const key = (a, b) => a * 65536 + b;
  const pairCount = new Map();
  const pairWords = new Map(); // pair -> Set of word indices that may contain it
  const addPairs = (index, sign) => {
    const { symbols, count } = words[index];
    for (let i = 0; i + 1 < symbols.length; i++) {
      const k = key(symbols[i], symbols[i + 1]);
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * count);
      if (sign > 0) {
        let set = pairWords.get(k);
        if (set === undefined) pairWords.set(k, (set = new Set()));
        set.add(index);
      }
    }
  };
  words.forEach((_, index) => addPairs(index, 1));

  const merges = [];
  while (merges.length < nMerges) {
    let best = -1;
    let bestCount = 1; // a pair seen once is not worth a token
    for (const [k, c] of pairCount) if (c > bestCount || (c === bestCount && best >= 0 && k < best)) { best = k; bestCount = c; }
    if (best < 0) break;
    const left = Math.floor(best / 65536);
    const right = best % 65536;
    const id = tokens.length;
    tokens.push(tokens[left] + tokens[right]);
    merges.push(`${tokens[left]} ${tokens[right]}`);
    for (const index of pairWords.get(best)) {
      addPairs(index, -1);
      const s = words[index].symbols;
      const merged = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === left && s[i + 1] === right) { merged.push(id); i++; }
        else merged.push(s[i]);
      }
      words[index].symbols = merged;
      addPairs(index, 1);
    }
    pairCount.delete(best);
    pairWords.delete(best);
  }
  return { tokens, merges };
}

function encodeSplit(tokenizer, documents, file) {
  const ids = [];
  for (const doc of documents) {
    ids.push(tokenizer.bosId);
    for (const id of tokenizer.encode(doc)) ids.push(id);
    ids.push(tokenizer.eosId);
  }
  const out = new Uint16Array(ids);
  fs.writeFileSync(file, Buffer.from(out.buffer));
  return out.length;
}

function main() {
  const [dataDir, vocabSizeText] = process.argv.slice(2);
  const vocabSize = Number(vocabSizeText);
  if (!dataDir || !Number.isInteger(vocabSize) || vocabSize < 260 || vocabSize > 65536) {
    console.error('usage: node bpe.js DATA_DIR VOCAB_SIZE (260..65536)');
    process.exit(2);
  }
  const train = readDocuments(path.join(dataDir, 'train.jsonl'));
  const heldout = readDocuments(path.join(dataDir, 'heldout.jsonl'));
  const started = Date.now();
  const { tokens, merges } = learnMerges(countWords(train), vocabSize - 256 - 2);
  tokens.push(bosText, eosText);
  // llama_token_type: 1 normal, 3 control.
  const types = tokens.map((_, id) => (id >= tokens.length - 2 ? 3 : 1));
  const vocab = { pre: preTokenizerName, tokens, types, merges, bosId: tokens.length - 2, eosId: tokens.length - 1 };
  fs.writeFileSync(path.join(dataDir, 'vocab.json'), JSON.stringify(vocab));
  console.log(`${merges.length} merges, ${tokens.length} tokens in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const tokenizer = Tokenizer.fromMetadata(new Map([
    ['tokenizer.ggml.model', 'gpt2'],
    ['tokenizer.ggml.pre', vocab.pre],
    ['tokenizer.ggml.tokens', tokens],
    ['tokenizer.ggml.token_type', types],
    ['tokenizer.ggml.merges', merges],
    ['tokenizer.ggml.bos_token_id', vocab.bosId],
    ['tokenizer.ggml.eos_token_id', vocab.eosId],
    ['tokenizer.ggml.add_bos_token', true],
  ]));
  for (const [name, docs] of [['train', train], ['heldout', heldout]]) {
    const n = encodeSplit(tokenizer, docs, path.join(dataDir, `${name}.u16`));
    const bytes = docs.reduce((a, d) => a + Buffer.byteLength(d), 0);
    console.log(`${name}: ${n} tokens, ${(bytes / n).toFixed(2)} bytes/token`);
  }
}

main();
