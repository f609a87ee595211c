import * as readline from 'readline';
import { Readable, Writable } from 'stream';
import { Command } from 'commander';

import type { Context } from '../api/Context';
import { GenerateOptions } from '../api/generate';
import { ContextFullError } from '../errors';
import { randomSeed } from '../sampling';
import type { ChatMessage } from '../chat';
import { GenerationCliOptions, addGenerationOptions, contextOptionsFrom, generateOptionsFrom, loadWithProgress, rate } from './generationOptions';

interface ChatCliOptions extends GenerationCliOptions {
  system?: string;
  verbose?: boolean;
}

export interface ChatIo {
  input: Readable;
  output: Writable;
  errors: Writable;
  /** Show a '> ' prompt and let readline edit lines (a terminal). */
  terminal: boolean;
}

export interface ChatSessionOptions {
  system?: string;
  /** Print each turn's speeds on `errors`. */
  verbose?: boolean;
  generate: GenerateOptions;
}

/**
 * A conversation kept in the context: each user line is added to the messages and
 * answered with context.chat(), which renders the model's own chat template and reuses
 * the cached tokens of the conversation so far. Reasoning (R1) is written in brackets on
 * `errors`; tool calls are listed there too. Lines: '/reset' forgets the conversation,
 * '/exit' (or end of input) ends the chat.
 */
export async function chatSession(context: Context, io: ChatIo, options: ChatSessionOptions): Promise<void> {
  const start = (): ChatMessage[] => (options.system ? [{ role: 'system', content: options.system }] : []);
  let messages = start();
  const restart = (): void => {
    messages = start();
    context.reset();
  };
  restart();
  const lines = readline.createInterface({ input: io.input, output: io.terminal ? io.output : undefined, terminal: io.terminal });
  const prompt = (): void => {
    if (io.terminal) lines.prompt();
  };
  lines.setPrompt('> ');
  let current: AbortController | undefined;
  const interrupt = (): void => {
    if (current) current.abort(new Error('interrupted'));
    else lines.close();
  };
  lines.on('SIGINT', interrupt);
  process.on('SIGINT', interrupt);
  prompt();
  try {
    for await (const raw of lines) {
      const line = raw.trim();
      if (line === '/exit' || line === '/quit') break;
      if (line === '/reset') {
        restart();
        prompt();
        continue;
      }
      if (line === '') {
        prompt();
        continue;
      }
      messages.push({ role: 'user', content: line });
      const controller = new AbortController();
      current = controller;
      let reply = '';
      try {
        const { generate } = options;
        const result = await context.chat(messages, {
          ...generate,
          signal: controller.signal,
          onDelta: (delta) => {
            if (delta.reasoning) io.errors.write(delta.reasoning);
            if (delta.content) {
              reply += delta.content;
              io.output.write(delta.content);
            }
            for (const call of delta.toolCalls) io.errors.write(`[tool call ${call.name} ${JSON.stringify(call.arguments)}]\n`);
          },
        });
        io.output.write('\n');
        if (options.verbose) {
          const t = result.timings;
          io.errors.write(
            `[prompt: ${result.promptTokens} tokens (${result.reusedTokens} cached), ${rate(result.promptTokens, t.promptMs)} tokens/s; ` +
              `generation: ${result.generatedTokens} tokens, ${rate(result.generatedTokens, t.generateMs)} tokens/s; ${result.stopReason}]\n`,
          );
        }
        messages.push(result.message);
        if (result.stopReason === 'contextFull') {
          io.errors.write('[the context is full: the next line starts a new conversation]\n');
          restart();
        }
      } catch (error) {
        if (controller.signal.aborted) {
          io.output.write('\n');
          messages.push({ role: 'assistant', content: reply.trim() });
        } else if (error instanceof ContextFullError) {
          io.errors.write('[the conversation no longer fits the context: starting a new one]\n');
          restart();
        } else {
          throw error;
        }
      } finally {
        current = undefined;
      }
      prompt();
    }
  } finally {
    process.removeListener('SIGINT', interrupt);
    lines.close();
  }
}

export function registerChat(program: Command): void {
  const command = program
    .command('chat')
    .description('talk with the model: each line on stdin is a user turn, the reply streams to stdout')
    .argument('[model]', 'GGUF model (default: the embedded model)')
    .option('--system <text>', 'system message at the start of the conversation')
    .option('--verbose', "print each turn's prompt and generation speeds on stderr")
    .addHelpText(
      'after',
      [
        '',
        'The conversation stays in the context: each turn evaluates only its new tokens.',
        "Type /reset to start over, /exit (or end the input) to quit; Ctrl-C stops a reply.",
        'Turns use a plain "User: ... Assistant:" layout until chat templates land.',
      ].join('\n'),
    );
  addGenerationOptions(command).action(async (modelPath: string | undefined, o: ChatCliOptions) => {
    const model = await loadWithProgress(modelPath, o.mmap);
    const seed = o.seed ?? randomSeed();
    if (o.seed === undefined && o.temp > 0 && o.verbose) process.stderr.write(`seed: ${seed}\n`);
    try {
      const context = await model.createContext(contextOptionsFrom(o));
      try {
        await chatSession(
          context,
          { input: process.stdin, output: process.stdout, errors: process.stderr, terminal: Boolean(process.stdin.isTTY && process.stdout.isTTY) },
          {
            system: o.system,
            verbose: o.verbose,
            generate: generateOptionsFrom(o, seed),
          },
        );
      } finally {
        await context.dispose();
      }
    } finally {
      model.dispose();
    }
  });
}
