#!/usr/bin/env node
'use strict';
/**
 * deepmla against its peer, ik_llama.cpp's llama-bench, on the same GGUF and the same
 * mode (DESIGN.md, "Performance yardstick").
 *
 * The machines are noisy (±20% between runs minutes apart), so the two are run
 * interleaved, R times each, alternating which goes first, and compared by medians.
 * Each run is one process of each tool with every test in it; its per-test mean t/s is
 * one sample.
 *
 *   node bench/side-by-side.js --ik ~/ik_llama.cpp/build/bin MODEL.gguf [options]
 *
 * See bench/README.md for building ik_llama.cpp (outside this repository) and the options.
 */
const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const usage = `usage: node bench/side-by-side.js --ik DIR MODEL.gguf [options]

  --ik DIR            ik_llama.cpp build/bin (or the llama-bench binary itself); env IK_BIN
  --reps R            interleaved runs of each tool (default 3); medians are reported
  --pp N              prompt test: N tokens in one batch (default 512, 0 = none)
  --tg N              generation test: N tokens one at a time (default 128, 0 = none)
  --depth D,D,...     also TG of --tg tokens after D tokens in the cache (default 0 = only
                      the empty cache); ik runs it as -gp D,N, test name tgN@ppD
  --pp-depth D,...    also PP of --pp tokens after D tokens in the cache, test ppN@ppD:
                      ik's llama-bench has no such test, so ik runs llama-sweep-bench (next
                      to llama-bench) over a context of max D + N, its row N_KV = D; needs
                      --pp equal to --ubatch and each D a multiple of it
  --mla N             MLA mode 0-3 (default 3)
  --fa on|off         flash attention (default on)
  --ctk TYPE          K cache type: f16, bf16, q8_0, q8_KV, q6_0 (default f16)
  --threads N         threads for both (default: ${os.cpus().length}, the cores here)
  --ubatch N          tokens per micro-batch (default 512)
  --amb MiB           attention max batch, passed to both only when given
  --mmap 1|0          map the weights (default 1) or read them into memory: ik -mmp 0,
                      deepmla --no-mmap
  --inner-reps N      repetitions inside each process (ik -r, deepmla --reps; default 1)
  --ik-args "..."     extra llama-bench arguments, e.g. "-fmoe 1 -rtr 1"
  --deepmla-args "..." extra 'deepmla bench' arguments
  --deepmla-cli FILE  deepmla's CLI (default: dist/cli/main.js of this package)
  --json              print the result as JSON instead of a table
  --dry-run           print the two command lines and stop
  -h, --help          this text
`;

function fail(message) {
  process.stderr.write(`side-by-side: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = {
    ik: process.env.IK_BIN, reps: 3, pp: 512, tg: 128, depth: [0], ppDepth: [], mla: 3, fa: 'on', ctk: 'f16',
    threads: os.cpus().length, ubatch: 512, amb: undefined, mmap: 1, innerReps: 1, ikArgs: [], deepmlaArgs: [],
    deepmlaCli: path.join(__dirname, '..', 'dist', 'cli', 'main.js'), json: false, dryRun: false, model: undefined,
  };
  const int = (name, v, min) => {
    if (!/^\d+$/.test(v ?? '') || Number(v) < min) fail(`${name}: expected an integer >= ${min}, received ${JSON.stringify(v)}`);
    return Number(v);
  };
  const words = (s) => (s ?? '').split(/\s+/).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => { if (i + 1 >= argv.length) fail(`${a}: missing value`); return argv[++i]; };
    switch (a) {
      case '-h': case '--help': process.stdout.write(usage); process.exit(0); break;
      case '--ik': o.ik = next(); break;
      case '--reps': o.reps = int(a, next(), 1); break;
      case '--pp': o.pp = int(a, next(), 0); break;
      case '--tg': o.tg = int(a, next(), 0); break;
      case '--depth': o.depth = next().split(',').map((d) => int(a, d.trim(), 0)); break;
      case '--pp-depth': o.ppDepth = next().split(',').map((d) => int(a, d.trim(), 1)); break;
      case '--mla': o.mla = int(a, next(), 0); if (o.mla > 3) fail('--mla: expected 0, 1, 2 or 3'); break;
      case '--fa': o.fa = next(); if (!['on', 'off'].includes(o.fa)) fail(`--fa: expected on or off, received ${o.fa}`); break;
      case '--ctk': o.ctk = next(); break;
      case '--threads': o.threads = int(a, next(), 1); break;
      case '--ubatch': o.ubatch = int(a, next(), 1); break;
      case '--mmap': o.mmap = int(a, next(), 0); if (o.mmap > 1) throw new Error('--mmap takes 1 or 0'); break;
      case '--amb': o.amb = int(a, next(), 0); break;
      case '--inner-reps': o.innerReps = int(a, next(), 1); break;
      case '--ik-args': o.ikArgs.push(...words(next())); break;
      case '--deepmla-args': o.deepmlaArgs.push(...words(next())); break;
      case '--deepmla-cli': o.deepmlaCli = path.resolve(next()); break;
      case '--json': o.json = true; break;
      case '--dry-run': o.dryRun = true; break;
      default:
        if (a.startsWith('-')) fail(`unknown option ${a}\n\n${usage}`);
        if (o.model) fail(`one model only (received ${o.model} and ${a})`);
        o.model = a;
    }
  }
  if (!o.model) fail(`no model given\n\n${usage}`);
  if (!fs.existsSync(o.model)) fail(`model not found: ${o.model}`);
  if (o.pp === 0 && o.tg === 0) fail('--pp and --tg are both 0: nothing to run');
  if (o.ppDepth.length > 0) {
    // llama-sweep-bench times one micro-batch of n_ubatch tokens at N_KV = 0, ub, 2 ub, ...
    if (o.pp !== o.ubatch) fail(`--pp-depth: --pp (${o.pp}) must equal --ubatch (${o.ubatch}), the batch llama-sweep-bench times`);
    const off = o.ppDepth.find((d) => d % o.ubatch !== 0);
    if (off !== undefined) fail(`--pp-depth: ${off} is not a multiple of --ubatch ${o.ubatch} (llama-sweep-bench measures at multiples of it)`);
  }
  return o;
}

function findLlamaBench(ik) {
  if (!ik) fail('--ik DIR is required: the bin directory of an ik_llama.cpp build (see bench/README.md)');
  const candidates = [ik, path.join(ik, 'llama-bench'), path.join(ik, 'bin', 'llama-bench')];
  const found = candidates.find((p) => fs.existsSync(p) && fs.statSync(p).isFile());
  if (!found) fail(`no llama-bench in ${ik} (looked for ${candidates.slice(1).join(', ')}); build it as bench/README.md says`);
  return found;
}

function findSweepBench(llamaBench) {
  const found = path.join(path.dirname(llamaBench), 'llama-sweep-bench');
  if (!fs.existsSync(found)) {
    fail(`--pp-depth needs ${found}: build it beside llama-bench (cmake --build build --target llama-sweep-bench)`);
  }
  return found;
}

/** The tests both tools are asked for, by the names both print. */
function testNames(o) {
  const names = [];
  if (o.pp > 0) names.push(`pp${o.pp}`);
  for (const d of o.ppDepth) names.push(`pp${o.pp}@pp${d}`);
  if (o.tg > 0) {
    for (const d of o.depth) names.push(d === 0 ? `tg${o.tg}` : `tg${o.tg}@pp${d}`);
  }
  return names;
}

function ikCommand(bin, o) {
  const args = ['-m', o.model, '-o', 'json', '-r', String(o.innerReps),
    '-mla', String(o.mla), '-fa', o.fa === 'on' ? '1' : '0', '-ctk', o.ctk,
    '-t', String(o.threads), '-ub', String(o.ubatch), '-p', String(o.pp)];
  // -n 0 skips the plain TG test; each depth is one -gp (the option takes a single pair).
  args.push('-n', String(o.depth.includes(0) ? o.tg : 0));
  if (o.tg > 0) for (const d of o.depth) if (d > 0) args.push('-gp', `${d},${o.tg}`);
  if (o.amb !== undefined) args.push('-amb', String(o.amb));
  if (!o.mmap) args.push('-mmp', '0');
  args.push(...o.ikArgs);
  return { file: bin, args };
}

/** PP at each --pp-depth: one sweep over the context, rows at every multiple of ubatch. */
function ikSweepCommand(bin, o) {
  const args = ['-m', o.model, '-c', String(Math.max(...o.ppDepth) + o.pp), '-ub', String(o.ubatch),
    '-b', String(o.ubatch), '-n', '1', '-mla', String(o.mla), '-fa', o.fa === 'on' ? '1' : '0', '-ctk', o.ctk,
    '-t', String(o.threads), '--output-format', 'jsonl'];
  if (o.amb !== undefined) args.push('-amb', String(o.amb));
  if (!o.mmap) args.push('--no-mmap');
  return { file: bin, args };
}

function deepmlaCommand(o, benchHelp = '') {
  const args = [o.deepmlaCli, 'bench', o.model, '--json', '--reps', String(o.innerReps),
    '--pp', String(o.pp), '--tg', String(o.tg), '--depth', o.depth.join(','),
    '--mla', String(o.mla), '--fa', o.fa, '--ctk', o.ctk,
    '--threads', String(o.threads), '--ubatch', String(o.ubatch)];
  // Only ik may know --amb (it caps the non-flash K*Q buffer; with --fa on it changes nothing).
  if (o.amb !== undefined && /--amb\b/.test(benchHelp)) args.push('--amb', String(o.amb));
  if (!o.mmap) args.push('--no-mmap');
  args.push(...o.deepmlaArgs);
  return { file: process.execPath, args };
}

/** deepmla's side of --pp-depth: the PP test only, at those depths. */
function deepmlaPpDepthCommand(o, benchHelp) {
  return deepmlaCommand({ ...o, tg: 0, depth: o.ppDepth }, benchHelp);
}

const shellQuote = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
const commandLine = (c) => [c.file, ...c.args].map(shellQuote).join(' ');

/**
 * The help text of 'deepmla bench', or why deepmla cannot be run. 'bench --help' alone
 * would not tell: commander answers an unknown command's --help with the program's help
 * and exit 0. The command list is what tells.
 */
function deepmlaBenchHelp(o) {
  if (!fs.existsSync(o.deepmlaCli)) {
    return { missing: `deepmla's CLI is not built (${o.deepmlaCli} is missing): run 'npm run build:ts'` };
  }
  const help = (...args) => childProcess.spawnSync(process.execPath, [o.deepmlaCli, ...args], { encoding: 'utf8' });
  const top = help('--help');
  if (top.status !== 0 || !/^\s+bench\b/m.test(top.stdout)) {
    return { missing: "this build of deepmla has no 'bench' command ('deepmla --help' does not list it); " +
      "rebuild with 'npm run build:ts' once lib/cli/bench.ts exists" };
  }
  return { help: help('bench', '--help').stdout };
}

function run(command, label) {
  const started = Date.now();
  const r = childProcess.spawnSync(command.file, command.args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (r.error || r.status !== 0) {
    const tail = (r.stderr || '').trim().split('\n').slice(-15).join('\n');
    fail(`${label} failed (${r.error ? r.error.message : `exit ${r.status}${r.signal ? `, ${r.signal}` : ''}`}) after ${seconds} s:\n` +
      `  ${commandLine(command)}\n${tail}`);
  }
  process.stderr.write(`  ${label}: ${seconds} s\n`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** The index of the brace closing the object opened at text[start], or -1. */
function closingBrace(text, start) {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

/**
 * JSON from a tool's stdout: the whole text, or else every top-level object in it.
 * llama-bench prints some log lines to stdout between its JSON rows (e.g. mla 1 without
 * flash attention), which breaks the array around them but not the rows.
 */
function parseJson(text, label) {
  try {
    return [JSON.parse(text)];
  } catch {
    const docs = [];
    for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) {
      const end = closingBrace(text, i);
      if (end === -1) break;
      try {
        docs.push(JSON.parse(text.slice(i, end + 1)));
        i = end;
      } catch { /* a brace in a log line: try the next one */ }
    }
    if (docs.length === 0) fail(`${label} printed no JSON:\n${text.slice(0, 2000)}`);
    return docs;
  }
}

function flattenRows(docs) {
  const rows = [];
  const visit = (d) => {
    if (Array.isArray(d)) d.forEach(visit);
    else if (d && typeof d === 'object') {
      if (typeof d.test === 'string') rows.push(d);
      else for (const key of ['rows', 'results', 'tests']) if (Array.isArray(d[key])) d[key].forEach(visit);
    }
  };
  docs.forEach(visit);
  return rows;
}

/** test name → mean t/s of this run, from llama-bench -o json; also its build. */
function ikResults(stdout) {
  const out = new Map();
  for (const row of flattenRows(parseJson(stdout, 'llama-bench'))) {
    out.set(row.test, row.avg_ts);
    out.build = `${row.build_commit} (build ${row.build_number})`;
  }
  return out;
}

/**
 * ppN@ppD → t/s of this run, from llama-sweep-bench --output-format jsonl: one JSON row
 * per N_KV on stderr (its LOG_TEE), among the loader's log lines.
 */
function ikSweepResults(stderr, o) {
  const out = new Map();
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{"n_kv_max"')) continue;
    const row = JSON.parse(line);
    if (o.ppDepth.includes(row.n_kv)) out.set(`pp${row.pp}@pp${row.n_kv}`, row.speed_pp);
  }
  if (out.size !== o.ppDepth.length) fail(`llama-sweep-bench printed no row for some of N_KV = ${o.ppDepth.join(', ')}:\n${stderr.slice(-2000)}`);
  return out;
}

/** test name → mean t/s of this run, from deepmla bench --json. */
function deepmlaResults(stdout) {
  const out = new Map();
  for (const row of flattenRows(parseJson(stdout, 'deepmla bench'))) {
    const tps = row.tokensPerSecond;
    const mean = typeof tps === 'number' ? tps : tps?.mean;
    if (typeof mean === 'number') out.set(row.test, mean);
  }
  return out;
}

function median(values) {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const bin = findLlamaBench(o.ik);
  const ik = ikCommand(bin, o);
  const ikSweep = o.ppDepth.length > 0 ? ikSweepCommand(findSweepBench(bin), o) : undefined;
  if (o.dryRun) {
    process.stdout.write(`${commandLine(ik)}\n${commandLine(deepmlaCommand(o))}\n`);
    if (ikSweep) process.stdout.write(`${commandLine(ikSweep)}\n${commandLine(deepmlaPpDepthCommand(o))}\n`);
    return;
  }
  const { missing, help } = deepmlaBenchHelp(o);
  if (missing) process.stderr.write(`side-by-side: ${missing}\nside-by-side: running ik_llama.cpp alone\n`);
  const deepmla = missing ? undefined : deepmlaCommand(o, help);
  const deepmlaPpDepth = !missing && ikSweep ? deepmlaPpDepthCommand(o, help) : undefined;
  if (deepmla && o.amb !== undefined && !deepmla.args.includes('--amb')) {
    process.stderr.write("side-by-side: 'deepmla bench' has no --amb; it goes to ik only\n");
  }

  // Another job on the machine swamps everything else: ik's OpenMP barriers spin, and on
  // oversubscribed cores one run can take ten times another.
  const load = os.loadavg()[0];
  if (load > 0.5) process.stderr.write(`side-by-side: load average ${load.toFixed(2)}: the machine is not idle, expect noise\n`);
  process.stderr.write(`ik:      ${commandLine(ik)}\n`);
  if (deepmla) process.stderr.write(`deepmla: ${commandLine(deepmla)}\n`);
  if (ikSweep) process.stderr.write(`ik:      ${commandLine(ikSweep)}\n`);
  if (deepmlaPpDepth) process.stderr.write(`deepmla: ${commandLine(deepmlaPpDepth)}\n`);

  const samples = { ik: new Map(), deepmla: new Map() };
  let ikBuild = null;
  const record = (tool, results) => {
    if (results.build) ikBuild = results.build;
    for (const [test, tps] of results) {
      if (!samples[tool].has(test)) samples[tool].set(test, []);
      samples[tool].get(test).push(tps);
    }
  };
  for (let rep = 0; rep < o.reps; rep++) {
    process.stderr.write(`run ${rep + 1}/${o.reps}\n`);
    // Alternate the order so that neither tool always runs on a warmer (or hotter) machine.
    const order = rep % 2 === 0 ? ['ik', 'deepmla'] : ['deepmla', 'ik'];
    for (const tool of order) {
      if (tool === 'ik') {
        record('ik', ikResults(run(ik, 'ik_llama.cpp').stdout));
        if (ikSweep) record('ik', ikSweepResults(run(ikSweep, 'ik_llama.cpp sweep').stderr, o));
      } else if (deepmla) {
        record('deepmla', deepmlaResults(run(deepmla, 'deepmla').stdout));
        if (deepmlaPpDepth) record('deepmla', deepmlaResults(run(deepmlaPpDepth, 'deepmla pp-depth').stdout));
      }
    }
  }

  const wanted = testNames(o);
  const extra = [...new Set([...samples.ik.keys(), ...samples.deepmla.keys()])].filter((t) => !wanted.includes(t));
  const rows = [...wanted, ...extra].map((test) => {
    const ikSamples = samples.ik.get(test) ?? [];
    const deepmlaSamples = samples.deepmla.get(test) ?? [];
    const ikMedian = median(ikSamples);
    const deepmlaMedian = median(deepmlaSamples);
    // Each run's own ratio (the two tools back to back): the host's speed drifts between
    // runs by more than the difference measured, and a pair sees nearly the same host.
    const runRatios = ikSamples.slice(0, deepmlaSamples.length).map((v, i) => deepmlaSamples[i] / v);
    return {
      test,
      ik: { median: ikMedian ?? null, samples: ikSamples },
      deepmla: { median: deepmlaMedian ?? null, samples: deepmlaSamples },
      ratio: ikMedian && deepmlaMedian ? deepmlaMedian / ikMedian : null,
      runRatios,
    };
  });

  if (o.json) {
    const result = {
      model: path.resolve(o.model),
      mode: { mla: o.mla, fa: o.fa, ctk: o.ctk, threads: o.threads, ubatch: o.ubatch, amb: o.amb ?? null, mmap: o.mmap },
      reps: o.reps, innerReps: o.innerReps, loadAverageAtStart: load,
      ik: { command: commandLine(ik), sweepCommand: ikSweep ? commandLine(ikSweep) : null, build: ikBuild },
      deepmla: deepmla
        ? { command: commandLine(deepmla), ppDepthCommand: deepmlaPpDepth ? commandLine(deepmlaPpDepth) : null }
        : { missing },
      ratio: 'deepmla / ik, of the medians; runRatios: of each run\'s pair',
      rows,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }

  const fmt = (v) => (v == null ? '—' : v.toFixed(2));
  const spread = (v) => (v.length === 0 ? '—' : `${median(v).toFixed(3)} (${Math.min(...v).toFixed(2)}-${Math.max(...v).toFixed(2)})`);
  const table = [['test', 'ik t/s', 'deepmla t/s', 'ratio', 'run ratios'],
    ...rows.map((r) => [r.test, fmt(r.ik.median), fmt(r.deepmla.median), r.ratio == null ? '—' : r.ratio.toFixed(3),
      spread(r.runRatios)])];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  const line = (row) => `| ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(' | ')} |`;
  process.stdout.write(`${path.basename(o.model)}: mla ${o.mla}, fa ${o.fa}, ctk ${o.ctk}, ` +
    `${o.threads} threads, ubatch ${o.ubatch}${o.amb !== undefined ? `, amb ${o.amb}` : ''}${o.mmap ? '' : ', no mmap'}; ` +
    `median of ${o.reps} interleaved runs; ratio = deepmla / ik of the medians; run ratios: each run's ` +
    `deepmla / ik, median (min-max); load average at start ${load.toFixed(2)}\n`);
  process.stdout.write(`${line(table[0])}\n|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|\n`);
  for (const row of table.slice(1)) process.stdout.write(`${line(row)}\n`);
  if (missing) process.stdout.write(`(deepmla: ${missing})\n`);
}

main();
