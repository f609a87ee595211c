/**
 * Generation on the v3-split.f32 fixture (vocab of 512 random tokens, so the text is
 * noise but deterministic): greedy against a hand-written loop, the cache contract, stop
 * reasons, stop strings split across tokens, abort latency, asynchrony, and the run and
 * chat commands in-process. Every context uses threads: 2 and a small contextSize.
 */
import * as fs from 'fs';
import { PassThrough, Readable } from 'stream';

import { Context, ContextFullError, DisposedError, GenerateResult, InvalidOptionError, Model, Tokenizer, loadModel } from '../lib';
import { defaultModelPath } from '../lib/api/defaultModel';
import { endOfGenerationTokens } from '../lib/api/generate';
import { chatSession } from '../lib/cli/chat';
import { main } from '../lib/cli/main';
import { argmax } from '../lib/sampling';
import { fixtureModel } from './helpers/deepseekFixture';
import { rejection, thrown } from './helpers/errors';

const modelPath = fixtureModel('v3-split.f32.gguf');
const threads = 2;
const eos = 497; // tokenizer.ggml.eos_token_id of the fixture, '<｜end▁of▁sentence｜>'

let model: Model;
let context: Context;

beforeAll(async () => {
  model = await loadModel(modelPath);
  context = await model.createContext({ threads, contextSize: 128 });
});

afterAll(async () => {
  await context.dispose();
  model.dispose();
});

beforeEach(() => context.reset());

/** Greedy generation written out with evaluate and argmax: the reference. */
async function greedyReference(prompt: number[], maxTokens: number): Promise<number[]> {
  const eog = endOfGenerationTokens(model);
  const out: number[] = [];
  let logits = await context.evaluate(prompt);
  for (;;) {
    const token = argmax(logits);
    out.push(token);
    if (eog.has(token) || out.length === maxTokens) return out;
    logits = await context.evaluate([token]);
  }
}

async function collect(stream: AsyncIterable<string>): Promise<string[]> {
  const pieces: string[] = [];
  for await (const piece of stream) pieces.push(piece);
  return pieces;
}

const greedy = { temperature: 0 } as const;

describe('tokenizer', () => {
  test('model.tokenizer is read from the metadata once', () => {
    expect(model.tokenizer).toBeInstanceOf(Tokenizer);
    expect(model.tokenizer).toBe(model.tokenizer);
    expect(model.tokenizer.vocabSize).toBe(model.config.nVocab);
  });

  test('the end-of-generation set holds the EOS id and known end-of-turn texts', () => {
    expect(endOfGenerationTokens(model)).toEqual(new Set([eos]));
    // The fixture's vocab with '<|im_end|>' (Kimi-K2, ChatML) and '<|EOT|>' in reserved slots.
    const metadata = new Map(model.info.metadata);
    const tokens = [...(metadata.get('tokenizer.ggml.tokens') as string[])];
    tokens[510] = '<|im_end|>';
    tokens[511] = '<|EOT|>';
    metadata.set('tokenizer.ggml.tokens', tokens);
    const fake = { tokenizer: Tokenizer.fromMetadata(metadata), info: { metadata } } as unknown as Model;
    expect(endOfGenerationTokens(fake)).toEqual(new Set([eos, 510, 511]));
  });
});

describe('generateText', () => {
  test('greedy equals the evaluate + argmax loop, and the text is the decoded tokens', async () => {
    const prompt = model.tokenizer.encode('hello', { addBos: true });
    const reference = await greedyReference(prompt, 40);
    context.reset();
    const result = await context.generateText('hello', { ...greedy, maxTokens: 40 });
    expect(result.tokens).toEqual(reference);
    expect(result.promptTokens).toBe(prompt.length);
    expect(result.generatedTokens).toBe(reference.length);
    expect(result.text).toBe(model.tokenizer.decode(reference));
    expect(result.timings.promptMs).toBeGreaterThanOrEqual(0);
    expect(result.timings.generateMs).toBeGreaterThanOrEqual(0);
  });

  test('the context keeps the prompt and every sampled token but the last', async () => {
    const first = await context.generateText('hello', { ...greedy, maxTokens: 10 });
    expect(first.stopReason).toBe('maxTokens');
    expect(context.nPast).toBe(first.promptTokens + 9);
    // Appending the last token continues the very same greedy sequence.
    const before = context.nPast;
    const next = await context.generateText([first.tokens[9]!], { ...greedy, maxTokens: 10 });
    expect(context.nPast).toBe(before + 1 + 9);
    context.reset();
    const whole = await context.generateText('hello', { ...greedy, maxTokens: 20 });
    expect([...first.tokens, ...next.tokens]).toEqual(whole.tokens);
  });

  test('a string prompt gets BOS only on an empty context, and special tokens are parsed', async () => {
    const tokenizer = model.tokenizer;
    const text = '<｜User｜>hello<｜Assistant｜>';
    const first = await context.generateText(text, { ...greedy, maxTokens: 1 });
    expect(first.promptTokens).toBe(tokenizer.encode(text, { addBos: true, parseSpecial: true }).length);
    expect(tokenizer.encode(text, { parseSpecial: true })).toContain(498); // <｜User｜>
    const second = await context.generateText(text, { ...greedy, maxTokens: 1 });
    expect(second.promptTokens).toBe(tokenizer.encode(text, { parseSpecial: true }).length);
    const forced = await context.generateText(text, { ...greedy, maxTokens: 1, addBos: true });
    expect(forced.promptTokens).toBe(first.promptTokens);
  });

  test('greedy stops at the EOS token, which is counted but writes no text', async () => {
    // Found by running: greedy from 'hello' samples EOS as its 58th token.
    const result = await context.generateText('hello', { ...greedy, maxTokens: Infinity });
    expect(result.stopReason).toBe('eos');
    expect(result.tokens[result.tokens.length - 1]).toBe(eos);
    expect(result.text).toBe(model.tokenizer.decode(result.tokens.slice(0, -1)));
    expect(context.nPast).toBe(result.promptTokens + result.generatedTokens - 1);
  });

  test('a negative presence penalty on an EOS in the prompt makes EOS the first token', async () => {
    // presence penalty -1000 lifts every token of the window: here only EOS.
    const result = await context.generateText([eos], { ...greedy, presencePenalty: -1000 });
    expect(result).toMatchObject({ stopReason: 'eos', tokens: [eos], text: '', generatedTokens: 1 });
  });

  test('maxTokens 0 evaluates the prompt only', async () => {
    const result = await context.generateText('hello', { maxTokens: 0 });
    expect(result).toMatchObject({ stopReason: 'maxTokens', tokens: [], text: '', generatedTokens: 0 });
    expect(context.nPast).toBe(result.promptTokens);
  });

  test('generation stops when the context is full', async () => {
    const small = await model.createContext({ threads, contextSize: 16 });
    try {
      const result = await small.generateText('hello', { ...greedy, maxTokens: Infinity });
      expect(result.stopReason).toBe('contextFull');
      expect(small.nPast).toBe(16);
      expect(result.generatedTokens).toBe(16 - result.promptTokens + 1);
    } finally {
      await small.dispose();
    }
  });

  test('a prompt that does not fit throws ContextFullError', async () => {
    const error = await rejection(context.generateText(new Array<number>(129).fill(1)));
    expect(error).toBeInstanceOf(ContextFullError);
    expect((error as ContextFullError).code).toBe('CONTEXT_FULL');
    expect(context.nPast).toBe(0);
  });

  test('the same seed gives the same text, another seed another', async () => {
    const run = async (seed: number): Promise<GenerateResult> => {
      context.reset();
      return context.generateText('hello', { temperature: 1, seed, maxTokens: 24 });
    };
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  test('onToken sees every sampled token, and its texts make the result', async () => {
    const seen: number[] = [];
    let text = '';
    const result = await context.generateText('hello', {
      ...greedy,
      maxTokens: 30,
      onToken: (piece, token) => {
        seen.push(token);
        text += piece;
      },
    });
    expect(seen).toEqual(result.tokens);
    expect(text).toBe(result.text);
  });
});

describe('stop strings', () => {
  /** The greedy tokens from 'hello' and the text of each. */
  async function greedyPieces(n: number): Promise<{ tokens: number[]; texts: string[] }> {
    const result = await context.generateText('hello', { ...greedy, maxTokens: n });
    context.reset();
    return { tokens: result.tokens, texts: result.tokens.map((t) => model.tokenizer.decode([t])) };
  }

  test('a stop string split across tokens ends the text before it, and no part of it is emitted', async () => {
    const { tokens, texts } = await greedyPieces(12);
    // Greedy from 'hello' writes '[', 'odel', 'ith' as tokens 8-10: the stop string
    // 'delit' starts inside 'odel' and ends inside 'ith'.
    expect(texts.slice(7, 10)).toEqual(['[', 'odel', 'ith']);
    const before = `${model.tokenizer.decode(tokens.slice(0, 8))}o`;
    const pieces: string[] = [];
    const stream = context.generate('hello', { ...greedy, maxTokens: 12, stop: ['delit', 'never'] });
    for await (const piece of stream) pieces.push(piece);
    expect(pieces.join('')).toBe(before);
    // 'odel' was held back whole while 'del' could still start 'delit'.
    expect(pieces.some((p) => p.includes('del'))).toBe(false);
    context.reset();
    const result = await context.generateText('hello', { ...greedy, maxTokens: 12, stop: 'delit' });
    expect(result.stopReason).toBe('stop');
    expect(result.text).toBe(before);
    expect(result.generatedTokens).toBe(10);
  });

  test('held-back text that turns out not to be a stop string is released', async () => {
    const plain = await context.generateText('hello', { ...greedy, maxTokens: 12 });
    context.reset();
    // 'odelX' never occurs: 'odel' is held until 'ith' arrives, then released.
    const held = await context.generateText('hello', { ...greedy, maxTokens: 12, stop: 'odelX' });
    expect(held.stopReason).toBe('maxTokens');
    expect(held.text).toBe(plain.text);
  });

  test('text held at the very end is released', async () => {
    const plain = await context.generateText('hello', { ...greedy, maxTokens: 9 });
    context.reset();
    // The 9th token is 'odel': held back by the stop string 'odel!' when generation ends.
    const pieces = await collect(context.generate('hello', { ...greedy, maxTokens: 9, stop: 'odel!' }));
    expect(pieces[pieces.length - 1]).toBe('odel'); // without the final release it would be lost
    expect(pieces.join('')).toBe(plain.text);
  });
});

describe('streaming', () => {
  test('the pieces join to the text, and none splits a UTF-8 character', async () => {
    const result = await context.generateText('hello', { ...greedy, maxTokens: 40 });
    context.reset();
    const pieces = await collect(context.generate('hello', { ...greedy, maxTokens: 40 }));
    expect(pieces.join('')).toBe(result.text);
    for (const piece of pieces) {
      expect(piece.length).toBeGreaterThan(0);
      // A lone surrogate would mean a character cut in two.
      expect(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(piece)).toBe(false);
    }
  });

  test('breaking out of the loop stops generation, and the context stays usable', async () => {
    let count = 0;
    for await (const piece of context.generate('hello', { ...greedy, maxTokens: 40 })) {
      void piece;
      if (++count === 2) break;
    }
    const after = context.nPast;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(context.nPast).toBe(after);
    const next = await context.generateText(' more', { ...greedy, maxTokens: 2 });
    expect(next.generatedTokens).toBe(2);
  });

  test('the event loop keeps turning while tokens are generated', async () => {
    // Timers, not setImmediate: a busy main thread would take a core from the 2 threads.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const stream = context.generate('hello', { ...greedy, maxTokens: 16 });
    let during = 0;
    for await (const piece of stream) {
      void piece;
      during = ticks;
    }
    clearInterval(timer);
    expect(during).toBeGreaterThan(0);
  });
});

describe('abort', () => {
  test('abort after the 3rd piece: the stream throws the reason and at most one more token is evaluated', async () => {
    const controller = new AbortController();
    const reason = new Error('enough');
    const stream = context.generate('hello', { ...greedy, maxTokens: 40, signal: controller.signal });
    const pieces: string[] = [];
    let nPastAtAbort = -1;
    const error = await (async () => {
      try {
        for await (const piece of stream) {
          pieces.push(piece);
          if (pieces.length === 3) {
            nPastAtAbort = context.nPast;
            controller.abort(reason);
          }
        }
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBe(reason);
    expect(pieces).toHaveLength(3);
    expect(context.nPast).toBeLessThanOrEqual(nPastAtAbort + 1);
  });

  test('an abort while a token is evaluated stops after that token', async () => {
    const controller = new AbortController();
    const reason = new Error('timer');
    let nPastAtAbort = -1;
    const pending = context.generateText('hello', {
      ...greedy,
      maxTokens: 100,
      signal: controller.signal,
      onToken: () => {
        // Abort from outside the stream, while the next evaluation runs.
        if (nPastAtAbort < 0 && context.nPast > 6) {
          setImmediate(() => {
            nPastAtAbort = context.nPast;
            controller.abort(reason);
          });
        }
      },
    });
    expect(await rejection(pending)).toBe(reason);
    expect(nPastAtAbort).toBeGreaterThan(0);
    expect(context.nPast).toBeLessThanOrEqual(nPastAtAbort + 1);
  });

  test('an aborted signal rejects before any evaluation', async () => {
    const controller = new AbortController();
    controller.abort(new Error('before'));
    const error = await rejection(context.generateText('hello', { signal: controller.signal }));
    expect((error as Error).message).toBe('before');
    expect(context.nPast).toBe(0);
  });
});

describe('options', () => {
  test.each<[string, object]>([
    ['maxTokens', { maxTokens: -1 }],
    ['maxTokens', { maxTokens: 1.5 }],
    ['stop', { stop: '' }],
    ['stop', { stop: [1] }],
    ['topK', { topK: -1 }],
    ['temperature', { temperature: -0.1 }],
    ['onToken', { onToken: 'x' }],
    ['signal', { signal: {} }],
    ['addBos', { addBos: 1 }],
  ])('a bad %s throws InvalidOptionError from generate and rejects from generateText', async (name, options) => {
    const error = thrown(() => context.generate('hello', options));
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as Error).message).toContain(`'${name}'`);
    expect(await rejection(context.generateText('hello', options))).toBeInstanceOf(InvalidOptionError);
    expect(context.nPast).toBe(0);
  });

  test('a disposed context throws DisposedError', async () => {
    const other = await model.createContext({ threads, contextSize: 16 });
    await other.dispose();
    expect(thrown(() => other.generate('hello'))).toBeInstanceOf(DisposedError);
    expect(await rejection(other.generateText('hello'))).toBeInstanceOf(DisposedError);
  });

  test('token ids out of the vocab are rejected, naming the position', () => {
    const error = thrown(() => context.generate([1, 512]));
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as Error).message).toContain("'prompt[1]'");
  });
});

describe('command line', () => {
  /** Runs main() in-process and returns what it wrote to stdout and stderr. */
  async function cli(args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number | undefined }> {
    let stdout = '';
    let stderr = '';
    const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout += chunk.toString();
      return true;
    });
    const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr += chunk.toString();
      return true;
    });
    const saved = process.exitCode;
    process.exitCode = undefined;
    try {
      await main(['node', 'deepmla', ...args]);
      return { stdout, stderr, exitCode: process.exitCode as number | undefined };
    } finally {
      process.exitCode = saved;
      out.mockRestore();
      err.mockRestore();
    }
  }

  test('run prints the greedy continuation and the speeds', async () => {
    const expected = await context.generateText('hello', { ...greedy, maxTokens: 8 });
    const { stdout, stderr, exitCode } = await cli(['run', modelPath, 'hello', '-n', '8', '--temp', '0', '--threads', '2', '--ctx', '64']);
    expect(exitCode).toBeUndefined();
    expect(stdout).toBe(`${expected.text}\n`);
    expect(stderr).toMatch(/prompt: 4 tokens .* tokens\/s\)/);
    expect(stderr).toMatch(/generation: 8 tokens .* tokens\/s\), stopped by maxTokens/);
  });

  test('run with a seed is reproducible', async () => {
    const args = ['run', modelPath, 'hello', '-n', '12', '--seed', '9', '--threads', '2', '--ctx', '64'];
    const a = await cli(args);
    const b = await cli(args);
    expect(a.stdout).toBe(b.stdout);
  });

  test('run without a model continues the prompt with the embedded default model and prints tokens/s', async () => {
    expect(fs.existsSync(defaultModelPath())).toBe(true);
    const { stdout, stderr, exitCode } = await cli(['run', 'Once upon a time', '-n', '16', '--temp', '0']);
    expect(exitCode).toBeUndefined();
    expect(stderr).toMatch(/generation: 16 tokens in [\d.]+ ms \([\d.]+ tokens\/s\)/);
    expect(stdout.match(/[A-Za-z]+/g)?.length ?? 0).toBeGreaterThan(3);
  });

  test('run rejects a bad sampling option, naming it', async () => {
    const { stderr, exitCode } = await cli(['run', modelPath, 'hello', '--top-p', '2']);
    expect(exitCode).toBe(1);
    expect(stderr).toContain('--top-p');
  });

  test('chat keeps the conversation in the context', async () => {
    const output = new PassThrough();
    const errors = new PassThrough();
    let written = '';
    output.on('data', (chunk: Buffer) => (written += chunk.toString()));
    await chatSession(
      context,
      { input: Readable.from(['hi\n', '\n', 'how are you\n', '/exit\n', 'never read\n']), output, errors, terminal: false },
      { generate: { ...greedy, maxTokens: 6 } },
    );
    const lines = written.split('\n');
    expect(lines).toHaveLength(3); // two replies, each ending in '\n'
    // The first reply is what context.chat answers to the first turn alone.
    const saved = context.nPast;
    context.reset();
    const first = await context.chat([{ role: 'user', content: 'hi' }], { ...greedy, maxTokens: 6 });
    expect(lines[0]).toBe(first.message.content);
    expect(saved).toBeGreaterThan(first.promptTokens + first.generatedTokens);
  });
});

describe('context.chat', () => {
  const greedyChat = { temperature: 0, maxTokens: 5 };

  test('renders the template, streams deltas that add up to the reply, and reuses the cached turns', async () => {
    const deltas: string[] = [];
    const first = await context.chat([{ role: 'user', content: 'hello there' }], { ...greedyChat, onDelta: (d) => deltas.push(d.content) });
    expect(first.message.role).toBe('assistant');
    expect(deltas.join('')).toBe(first.message.content);
    expect(first.reusedTokens).toBe(0);
    const prompt = model.chatTemplate.render([{ role: 'user', content: 'hello there' }], { addGenerationPrompt: true });
    expect(first.promptTokens).toBe(model.tokenizer.encode(prompt, { parseSpecial: true }).length);

    const second = await context.chat(
      [{ role: 'user', content: 'hello there' }, first.message, { role: 'user', content: 'and then?' }],
      greedyChat,
    );
    // Everything up to the first reply's text was already in the cache.
    expect(second.reusedTokens).toBeGreaterThan(first.promptTokens - 1);
    const fresh = await (async () => {
      context.reset();
      return context.chat([{ role: 'user', content: 'hello there' }, first.message, { role: 'user', content: 'and then?' }], greedyChat);
    })();
    expect(second.message.content).toBe(fresh.message.content);
  });

  test('bad messages are typed errors', async () => {
    await expect(context.chat([{ role: 'robot', content: 'x' } as never])).rejects.toBeInstanceOf(InvalidOptionError);
  });
});

describe('context shift during generation', () => {
  test('with contextShift, generation goes past a full context; without it, it stops', async () => {
    const small = await model.createContext({ threads, contextSize: 32 });
    try {
      const prompt = [496, 10, 20, 30, 40, 50, 60, 70];
      const stopped = await small.generateText(prompt, { temperature: 0, maxTokens: 60, presencePenalty: 0 });
      expect(stopped.stopReason).toBe('contextFull');
      small.reset();
      const shifted = await small.generateText(prompt, { temperature: 0, maxTokens: 60, contextShift: { keep: 1 } });
      expect(['maxTokens', 'eos']).toContain(shifted.stopReason);
      if (shifted.stopReason === 'maxTokens') expect(shifted.generatedTokens).toBe(60);
      expect(small.nPast).toBeLessThanOrEqual(32);
      // The kept prefix survives every shift.
      expect(small.tokens[0]).toBe(496);
      // Before the first shift the output is the plain greedy continuation.
      expect(shifted.tokens.slice(0, 20)).toEqual(stopped.tokens.slice(0, 20));
    } finally {
      await small.dispose();
    }
  });

  test('a bad contextShift option is a typed error', () => {
    expect(() => context.generate([1, 2], { contextShift: { keep: -1 } })).toThrow(InvalidOptionError);
  });
});
