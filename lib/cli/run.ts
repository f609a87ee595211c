import { Command } from 'commander';

import { invalidOption } from '../errors';
import { randomSeed } from '../sampling';
import { GenerationCliOptions, addGenerationOptions, contextOptionsFrom, generateOptionsFrom, loadWithProgress, rate } from './generationOptions';

export function registerRun(program: Command): void {
  const command = program
    .command('run')
    .description('continue PROMPT: the text streams to stdout, then the prompt and generation speeds go to stderr')
    .argument('[model]', 'GGUF model (default: the embedded model; with one argument, it is the prompt)')
    .argument('[prompt]', 'text to continue; special tokens such as <｜User｜> are read as tokens')
    .addHelpText(
      'after',
      [
        '',
        'Ctrl-C stops the generation and still prints the speeds. The context starts empty, so the',
        "model's BOS token comes first if its GGUF asks for it (tokenizer.ggml.add_bos_token).",
        '',
        'Example:',
        '  $ deepmla run DeepSeek-V2-Lite.Q8_0.gguf "The capital of France is" -n 32 --temp 0',
      ].join('\n'),
    );
  addGenerationOptions(command).action(async (first: string | undefined, second: string | undefined, o: GenerationCliOptions) => {
    const [modelPath, prompt] = second === undefined ? [undefined, first] : [first, second];
    if (prompt === undefined) throw invalidOption('prompt', 'the text to continue', undefined);
    const model = await loadWithProgress(modelPath, o.mmap);
    const seed = o.seed ?? randomSeed();
    if (o.seed === undefined && o.temp > 0) process.stderr.write(`seed: ${seed}\n`);
    const controller = new AbortController();
    const onSigint = (): void => controller.abort(new Error('interrupted'));
    try {
      const context = await model.createContext(contextOptionsFrom(o));
      process.once('SIGINT', onSigint);
      try {
        let generated = 0;
        const started = performance.now();
        let promptDone = 0;
        let promptTokens = 0;
        let stopReason = 'interrupted';
        try {
          const result = await context.generateText(prompt, {
            ...generateOptionsFrom(o, seed),
            signal: controller.signal,
            onToken: (text) => {
              if (generated++ === 0) {
                promptDone = performance.now();
                promptTokens = context.nPast;
              }
              if (text !== '') process.stdout.write(text);
            },
          });
          stopReason = result.stopReason;
          promptTokens = result.promptTokens;
          generated = result.generatedTokens;
          promptDone = started + result.timings.promptMs;
        } catch (error) {
          if (!controller.signal.aborted) throw error;
        }
        const ended = performance.now();
        process.stdout.write('\n');
        const promptMs = (promptDone || ended) - started;
        const generateMs = ended - (promptDone || ended);
        process.stderr.write(
          `prompt: ${promptTokens} tokens in ${promptMs.toFixed(1)} ms (${rate(promptTokens, promptMs)} tokens/s)\n` +
            `generation: ${generated} tokens in ${generateMs.toFixed(1)} ms (${rate(generated, generateMs)} tokens/s), stopped by ${stopReason}\n`,
        );
      } finally {
        process.removeListener('SIGINT', onSigint);
        await context.dispose();
      }
    } finally {
      model.dispose();
    }
  });
}
