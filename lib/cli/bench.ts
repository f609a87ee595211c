import { Command } from 'commander';

import { loadModel } from '../api/Model';
import { formatBenchTable, runBench } from '../bench/runBench';
import { invalidOption } from '../errors';
import { CacheType, MlaMode } from '../model/attentionMode';
import { cacheType, integer, mla, onOff } from './options';

interface BenchCliOptions {
  pp: number[];
  tg: number[];
  depth: number[];
  reps: number;
  mla: MlaMode;
  fa: boolean;
  ctk: CacheType;
  threads?: number;
  ubatch: number;
  ctx?: number;
  json?: boolean;
  mmap: boolean;
}

/** A comma-separated list of integers >= min, as llama-bench's -p 512,1024. */
function integerList(name: string, min: number): (value: string) => number[] {
  const one = integer(name, min);
  return (value) => {
    if (value.trim() === '') throw invalidOption(name, `comma-separated integers >= ${min}`, value);
    return value.split(',').map((v) => one(v));
  };
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('prompt processing and token generation speed, like llama-bench (ppN, tgN, tgN@ppD)')
    .argument('<model>', 'GGUF model')
    .option('--pp <n,...>', 'prompt lengths (0: none)', integerList('--pp', 0), [512])
    .option('--tg <n,...>', 'tokens generated one at a time (0: none)', integerList('--tg', 0), [128])
    .option('--depth <n,...>', 'tokens in the cache before each test, untimed', integerList('--depth', 0), [0])
    .option('--reps <n>', 'timed repetitions per test (after one warm-up)', integer('--reps', 1, 1000), 3)
    .option('--mla <n>', 'MLA mode 0-3', mla, 3)
    .option('--fa <on|off>', 'flash attention', onOff('--fa'), true)
    .option('--ctk <type>', 'K cache type: f16, bf16, q8_0, q8_KV, q6_0', cacheType('--ctk'), 'f16')
    .option('--threads <n>', 'threads (default: all cores)', integer('--threads', 1, 1024))
    .option('--ubatch <n>', 'tokens per micro-batch', integer('--ubatch', 1, 1 << 16), 512)
    .option('--ctx <n>', 'context size, for the memory report at that size (default: largest depth + test + 16)', integer('--ctx', 1, 1 << 24))
    .option('--json', 'print a JSON array of rows instead of the table')
    .option('--no-mmap', 'read the weights into memory instead of mapping the file (as llama-bench -mmp 0)')
    .action(async (modelPath: string, o: BenchCliOptions) => {
      const model = await loadModel(modelPath, { mmap: o.mmap });
      try {
        const report = await runBench(model, {
          pp: o.pp,
          tg: o.tg,
          depth: o.depth,
          reps: o.reps,
          mla: o.mla,
          flashAttention: o.fa,
          cacheType: o.ctk,
          threads: o.threads,
          batchSize: o.ubatch,
          contextSize: o.ctx,
          onTest: (test) => process.stderr.write(`running ${test}\n`),
        });
        const contextSize = report.rows[0]?.contextSize ?? 0;
        const memory = `memory at context ${contextSize}:\n${report.memoryReport}`;
        if (o.json) {
          process.stderr.write(`${memory}\n`);
          process.stdout.write(`${JSON.stringify(report.rows, null, 1)}\n`);
        } else {
          process.stdout.write(`${formatBenchTable(report)}\n\n${memory}\n`);
        }
      } finally {
        model.dispose();
      }
    });
}
