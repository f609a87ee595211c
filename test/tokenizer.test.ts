import * as fs from 'fs';
import * as path from 'path';
import { GgufError, InvalidOptionError, UnsupportedError } from '../lib/errors';
import { inspectGguf } from '../lib/gguf';
import { Tokenizer, TokenType } from '../lib/tokenizer';
import { byteToChar } from '../lib/tokenizer/byteLevel';
import { thrown } from './helpers/errors';

// The fixtures live next to the repository: /work/shared/fixtures (see its README.md,
// "Tokenizer vectors").
const fixtures = path.resolve(__dirname, '../../shared/fixtures');
const vocabs = ['deepseek-llm', 'deepseek-coder', 'deepseek-v3'] as const;
type VocabName = (typeof vocabs)[number];

interface Vector {
  text: string;
  ids: number[];
}

/** The .inp strings (each followed by the separator) paired with the .out lines. */
function readVectors(name: VocabName): Vector[] {
  const base = path.join(fixtures, 'tokenizer', `ggml-vocab-${name}.gguf`);
  const separator = '\n__ggml_vocab_test__\n';
  const inp = fs.readFileSync(`${base}.inp`, 'utf8');
  const out = fs.readFileSync(`${base}.out`, 'utf8');
  expect(inp.endsWith(separator)).toBe(true);
  expect(out.endsWith('\n')).toBe(true);
  const texts = inp.slice(0, -separator.length).split(separator);
  const lines = out.slice(0, -1).split('\n');
  expect(lines).toHaveLength(texts.length);
  return texts.map((text, i) => ({
    text,
    ids: lines[i].split(' ').filter((field) => field !== '').map(Number),
  }));
}

const metadata = new Map<VocabName, Map<string, unknown>>();
const tokenizers = new Map<VocabName, Tokenizer>();

beforeAll(async () => {
  for (const name of vocabs) {
    const info = await inspectGguf(path.join(fixtures, 'tokenizer', `ggml-vocab-${name}.gguf`));
    metadata.set(name, info.metadata);
    tokenizers.set(name, Tokenizer.fromMetadata(info.metadata));
  }
});

function tokenizer(name: VocabName): Tokenizer {
  const found = tokenizers.get(name);
  if (!found) throw new Error(`no tokenizer ${name}`);
  return found;
}

describe.each(vocabs)('%s', (name) => {
  const vectors = readVectors(name);

  test('encodes every vector exactly as the .out file', () => {
    const tok = tokenizer(name);
    for (const { text, ids } of vectors) {
      expect({ text, ids: tok.encode(text) }).toEqual({ text, ids });
    }
  });

  test('decode(encode(s)) === s', () => {
    const tok = tokenizer(name);
    for (const { text } of vectors) expect(tok.decode(tok.encode(text))).toBe(text);
    for (const text of ['\u0085\u00a0x\u3000y\ufeff~ ~~ a~b', '\ufeffleading BOM', 'a'.repeat(5000), ' \n'.repeat(100)]) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  test('the streaming decoder gives the same text as decode, token by token', () => {
    const tok = tokenizer(name);
    for (const { text, ids } of vectors) {
      const stream = tok.createStreamingDecoder();
      let streamed = '';
      for (const id of ids) {
        const piece = stream.push(id);
        // Only whole characters: never a lone surrogate half, never U+FFFD for valid text.
        expect(piece).not.toMatch(/\uFFFD/);
        streamed += piece;
      }
      streamed += stream.flush();
      expect(streamed).toBe(text);
    }
  });

  test('BOS, EOS and special tokens', () => {
    const tok = tokenizer(name);
    const meta = metadata.get(name)!;
    expect(tok.bosId).toBe(meta.get('tokenizer.ggml.bos_token_id'));
    expect(tok.eosId).toBe(meta.get('tokenizer.ggml.eos_token_id'));
    expect(tok.addBosToken).toBe(true);
    const bos = tok.bosId!;
    const eos = tok.eosId!;
    const bosText = '<｜begin▁of▁sentence｜>';
    expect(tok.tokenText(bos)).toBe(bosText);
    expect(tok.tokenType(bos)).toBe(TokenType.Control);

    const hello = tok.encode('Hello');
    expect(tok.encode('Hello', { addBos: true })).toEqual([bos, ...hello]);
    expect(tok.encode('Hello', { addBos: true, addEos: true })).toEqual([bos, ...hello, eos]);
    expect(tok.encode('', { addBos: true })).toEqual([bos]);

    // With parseSpecial the control token's text is the token; without, it is plain text.
    expect(tok.encode(`${bosText}Hello`, { parseSpecial: true })).toEqual([bos, ...hello]);
    const plain = tok.encode(`${bosText}Hello`);
    expect(plain).not.toContain(bos);
    expect(plain.length).toBeGreaterThan(2);
    expect(tok.decode(plain)).toBe(`${bosText}Hello`);
    expect(tok.encode(`a${bosText}${bosText}b`, { parseSpecial: true })).toEqual([
      ...tok.encode('a'), bos, bos, ...tok.encode('b'),
    ]);

    // Control tokens write nothing unless asked for.
    expect(tok.decode([bos, ...hello, eos])).toBe('Hello');
    expect(tok.decode([bos, ...hello], { special: true })).toBe(`${bosText}Hello`);
  });
});

test('user-defined tokens are matched even without parseSpecial', () => {
  // deepseek-coder stores '<｜fim▁hole｜>' etc. as user-defined (type 4) tokens.
  const tok = tokenizer('deepseek-coder');
  const hole = tok.tokenId('<｜fim▁hole｜>')!;
  expect(tok.tokenType(hole)).toBe(TokenType.UserDefined);
  expect(tok.encode('x<｜fim▁hole｜>y')).toEqual([...tok.encode('x'), hole, ...tok.encode('y')]);
  expect(tok.decode([hole])).toBe('<｜fim▁hole｜>');
  // deepseek-v3's tool-call markers are user-defined too.
  const v3 = tokenizer('deepseek-v3');
  const sep = v3.tokenId('<｜tool▁sep｜>')!;
  expect(v3.encode('a<｜tool▁sep｜>b')).toEqual([...v3.encode('a'), sep, ...v3.encode('b')]);
});

test('longer special tokens win over the shorter ones inside them', () => {
  const v3 = tokenizer('deepseek-v3');
  const begin = v3.tokenId('<｜tool▁calls▁begin｜>')!;
  const callBegin = v3.tokenId('<｜tool▁call▁begin｜>')!;
  expect(v3.encode('<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>')).toEqual([begin, callBegin]);
});

test('streaming decoder holds back characters split across tokens', () => {
  const tok = tokenizer('deepseek-v3');
  // Byte tokens make every character span several tokens.
  const text = '🦙 я 我想 😶‍🌫️';
  const bytes = Buffer.from(text, 'utf8');
  const byteIds = [...bytes].map((byte) => byteTokenId(tok, byte));
  const stream = tok.createStreamingDecoder();
  const pieces = byteIds.map((id) => stream.push(id));
  expect(pieces.join('') + stream.flush()).toBe(text);
  // '🦙' is 4 bytes: nothing until the 4th.
  expect(pieces.slice(0, 4)).toEqual(['', '', '', '🦙']);
  for (const piece of pieces) expect(piece).not.toMatch(/\uFFFD/);

  // The real encoding of '🦙' ends mid-character after its first token.
  const llama = tok.encode('🦙');
  expect(llama.length).toBeGreaterThan(1);
  const s2 = tok.createStreamingDecoder();
  expect(s2.push(llama[0])).toBe('');
  expect(s2.pushAll(llama.slice(1))).toBe('🦙');
  expect(s2.flush()).toBe('');

  // An incomplete character at the end comes out as U+FFFD on flush.
  const s3 = tok.createStreamingDecoder();
  expect(s3.push(byteTokenId(tok, 0xf0))).toBe('');
  expect(s3.flush()).toBe('\uFFFD');
  // After flush the decoder starts afresh.
  expect(s3.pushAll(tok.encode('ok'))).toBe('ok');
});

/** The id of the token that is exactly one byte. */
function byteTokenId(tok: Tokenizer, byte: number): number {
  const id = tok.tokenId(byteToChar[byte]);
  if (id === undefined) throw new Error(`no byte token for ${byte}`);
  return id;
}

test('deepseek-v3 treats ASCII ~ as a symbol (as its tokenizer.json, unlike ik_llama.cpp)', () => {
  // "Ġ~" is one token: " ~" must be one pre-token. ggml-org/llama.cpp#26972.
  const v3 = tokenizer('deepseek-v3');
  const spaceTilde = v3.tokenId('Ġ~');
  expect(spaceTilde).toBeDefined();
  expect(v3.encode('a ~')).toEqual([...v3.encode('a'), spaceTilde]);
});

test('options and ids are validated', () => {
  const tok = tokenizer('deepseek-v3');
  expect(() => tok.encode(42 as unknown as string)).toThrow(InvalidOptionError);
  expect(() => tok.encode('x', { addBos: 'yes' as unknown as boolean })).toThrow(InvalidOptionError);
  expect(() => tok.decode([tok.vocabSize])).toThrow(InvalidOptionError);
  expect(() => tok.decode([-1])).toThrow(InvalidOptionError);
  expect(() => tok.decode([1.5])).toThrow(InvalidOptionError);
});

describe('fromMetadata errors', () => {
  function withChange(key: string, value: unknown): Map<string, unknown> {
    const meta = new Map(metadata.get('deepseek-v3')!);
    if (value === undefined) meta.delete(key);
    else meta.set(key, value);
    return meta;
  }

  test.each(['tokenizer.ggml.model', 'tokenizer.ggml.pre', 'tokenizer.ggml.tokens', 'tokenizer.ggml.token_type', 'tokenizer.ggml.merges'])(
    'missing %s: GGUF_MISSING_KEY',
    (key) => {
      const error = thrown(() => Tokenizer.fromMetadata(withChange(key, undefined)));
      expect(error).toBeInstanceOf(GgufError);
      expect((error as GgufError).code).toBe('GGUF_MISSING_KEY');
    },
  );

  test('add_bos_token without bos_token_id: GGUF_MISSING_KEY', () => {
    const error = thrown(() => Tokenizer.fromMetadata(withChange('tokenizer.ggml.bos_token_id', undefined)));
    expect(error).toBeInstanceOf(GgufError);
    expect((error as GgufError).code).toBe('GGUF_MISSING_KEY');
  });

  test.each([
    ['tokenizer.ggml.model', 'llama'],
    ['tokenizer.ggml.model', 'bert'],
    ['tokenizer.ggml.pre', 'qwen2'],
  ])('%s = %s: UNSUPPORTED', (key, value) => {
    const error = thrown(() => Tokenizer.fromMetadata(withChange(key, value)));
    expect(error).toBeInstanceOf(UnsupportedError);
    expect((error as UnsupportedError).code).toBe('UNSUPPORTED');
  });

  test.each([
    ['tokenizer.ggml.tokens', 'not an array'],
    ['tokenizer.ggml.token_type', [1, 2, 3]],
    ['tokenizer.ggml.bos_token_id', 10_000_000],
    ['tokenizer.ggml.add_bos_token', 1],
  ])('bad %s: GGUF_BAD_VALUE', (key, value) => {
    const error = thrown(() => Tokenizer.fromMetadata(withChange(key, value)));
    expect(error).toBeInstanceOf(GgufError);
    expect((error as GgufError).code).toBe('GGUF_BAD_VALUE');
  });
});

