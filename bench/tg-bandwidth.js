#!/usr/bin/env node
'use strict';
/**
 * Token generation against the machine's read bandwidth: bytes of weights one token
 * reads (from the GGUF: every tensor of the absorbed mla 2/3 path, the used fraction of
 * the routed experts, the output matrix), times deepmla's measured tg t/s, divided by
 * the bandwidth of a plain AVX2 read loop over 512 MiB of 2 MiB pages on the same threads
 * (the machine's best: 4 KiB pages read slower, see bench/README.md). Runs the two
 * measurements alternately and prints the medians.
 *
 *   cmake --build build --target deepmla_bench_kernels
 *   node bench/tg-bandwidth.js MODEL.gguf [--threads 2] [--tg 128] [--reps 3] [--ctk q8_0]
 */
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const { inspectGguf } = require(path.join(root, 'dist'));
const { readDeepseekConfig } = require(path.join(root, 'dist', 'model', 'config'));

function option(args, name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
}

/** Bytes of weights read to generate one token (mla 2/3: absorbed attention). */
function bytesPerToken(info, config) {
  const fraction = config.nExpert > 0 ? config.nExpertUsed / config.nExpert : 1;
  const hasSplit = info.tensors.some((t) => t.name.endsWith('attn_k_b.weight'));
  let bytes = 0;
  const rows = [];
  for (const t of info.tensors) {
    const name = t.name;
    let b = t.nbytes;
    if (name === 'token_embd.weight') b = b / t.shape[1]; // one row
    else if (/_exps\.weight$/.test(name)) b *= fraction;
    else if (/attn_kv_b\.weight$/.test(name)) {
      if (hasSplit) continue;
      // A legacy file's k_b is derived at context creation (F32 from F32, else F16); its
      // v_b is a view of kv_b's own v rows.
      const values = t.shape.reduce((a, v) => a * v, 1);
      const kShare = config.nopeDim / (config.nopeDim + config.vHeadDim);
      b = values * kShare * (t.type === 'f32' ? 4 : 2) + t.nbytes * (1 - kShare);
    }
    bytes += b;
    rows.push([name, b]);
  }
  return { bytes, rows };
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main() {
  const args = process.argv.slice(2);
  const model = args.find((a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1].startsWith('--')));
  if (!model) {
    console.error('usage: node bench/tg-bandwidth.js MODEL.gguf [--threads 2] [--tg 128] [--reps 3] [--ctk q8_0]');
    process.exit(2);
  }
  const threads = option(args, '--threads', '2');
  const tg = option(args, '--tg', '128');
  const reps = Number(option(args, '--reps', '3'));
  const ctk = option(args, '--ctk', 'q8_0');
  const info = await inspectGguf(model);
  const config = readDeepseekConfig(info);
  const { bytes } = bytesPerToken(info, config);
  const kernels = path.join(root, 'build', 'deepmla_bench_kernels');
  const cli = path.join(root, 'dist', 'cli', 'main.js');
  const bandwidths = [];
  const rates = [];
  for (let r = 0; r < reps; r++) {
    const out = execFileSync(kernels, ['--types', 'none', '--threads', threads, '--reps', '5'], { encoding: 'utf8' });
    const gbps = Number(/: ([\d.]+) GB\/s/.exec(out)?.[1]);
    const bench = JSON.parse(execFileSync(process.execPath, [cli, 'bench', model, '--pp', '0', '--tg', tg, '--reps', '1',
      '--threads', threads, '--ctk', ctk, '--json'], { encoding: 'utf8' }));
    const rate = bench.find((row) => row.test === `tg${tg}`).tokensPerSecond.mean;
    bandwidths.push(gbps);
    rates.push(rate);
    console.error(`rep ${r + 1}: read loop ${gbps.toFixed(1)} GB/s, tg${tg} ${rate.toFixed(2)} t/s`);
  }
  const gbps = median(bandwidths);
  const rate = median(rates);
  const used = (rate * bytes) / 1e9;
  console.log(`${path.basename(model)}: ${(bytes / 1e6).toFixed(1)} MB of weights per token (mla 3, ${config.nExpertUsed} of ${config.nExpert} experts)`);
  console.log(`tg${tg}: ${rate.toFixed(2)} t/s -> ${used.toFixed(1)} GB/s; read loop ${gbps.toFixed(1)} GB/s on ${threads} threads; ${(100 * used / gbps).toFixed(1)}% of it (median of ${reps})`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
