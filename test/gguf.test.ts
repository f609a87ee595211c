import * as fs from 'fs';
import * as path from 'path';

import { GgufError, InvalidOptionError, IoError } from '../lib/errors';
import { inspectGguf, inspectGgufBuffer, GgufInfo } from '../lib/gguf/inspect';
import {
  getArray,
  getBool,
  getNumber,
  getNumberArray,
  getOptionalNumber,
  getOptionalString,
  getString,
  getStringArray,
  getU32,
  hasKey,
} from '../lib/gguf/metadata';
import { GgufTensorType } from '../lib/gguf/tensorType';
import { GgufWriter } from '../lib/gguf/writer';
import { kvAt, patched, patchU32, patchU64, smallGguf, tensorAt, TempDir } from './helpers/malformed';
import { expectThrow, rejection } from './helpers/errors';

const fixtures = path.resolve(__dirname, '../../shared/fixtures');
const modelFiles = fs.readdirSync(path.join(fixtures, 'models')).filter((f) => f.endsWith('.gguf'));
const tokenizerFiles = fs.readdirSync(path.join(fixtures, 'tokenizer')).filter((f) => f.endsWith('.gguf'));

async function expectGgufError(file: string, code: string): Promise<void> {
  const error = await rejection(inspectGguf(file));
  expect(error).toBeInstanceOf(GgufError);
  expect((error as GgufError).code).toBe(code);
}

describe('malformed GGUF files', () => {
  const dir = new TempDir();
  const image = smallGguf();
  const { layout } = image;
  afterAll(() => dir.remove());

  it('accepts the unbroken file', async () => {
    const info = await inspectGguf(dir.write(image.buffer));
    expect(info.tensors.map((t) => t.name)).toEqual(['a.weight', 'b.weight']);
    expect(info.fileSize).toBe(layout.fileSize);
    expect(info.dataOffset).toBe(layout.dataOffset);
  });

  it('GGUF_BAD_MAGIC', async () => {
    await expectGgufError(dir.write(patched(image, (b) => b.write('GGML', 0, 'latin1'))), 'GGUF_BAD_MAGIC');
  });

  it('GGUF_UNSUPPORTED_VERSION: version 1', async () => {
    await expectGgufError(dir.write(patched(image, (b) => patchU32(b, layout.version, 1))), 'GGUF_UNSUPPORTED_VERSION');
  });

  it('GGUF_UNSUPPORTED_VERSION: version 4', async () => {
    await expectGgufError(dir.write(patched(image, (b) => patchU32(b, layout.version, 4))), 'GGUF_UNSUPPORTED_VERSION');
  });

  it('GGUF_UNSUPPORTED_VERSION: big-endian', async () => {
    const file = dir.write(patched(image, (b) => b.writeUInt32BE(3, layout.version)));
    await expectGgufError(file, 'GGUF_UNSUPPORTED_VERSION');
  });

  it('GGUF_TRUNCATED: empty file', async () => {
    await expectGgufError(dir.write(new Uint8Array(0)), 'GGUF_TRUNCATED');
  });

  it('GGUF_TRUNCATED at every offset inside the header', async () => {
    for (let n = 0; n < layout.headerEnd; n++) {
      await expectGgufError(dir.write(image.buffer.subarray(0, n)), 'GGUF_TRUNCATED');
    }
  });

  it('GGUF_TENSOR_OUT_OF_BOUNDS at every offset of a truncated data section', async () => {
    // The last tensor ends the file (64 data bytes, no trailing padding), so every
    // shorter file lacks tensor data.
    expect(tensorAt(layout, 'b.weight').dataStart + 32).toBe(layout.fileSize);
    for (let n = layout.headerEnd; n < layout.fileSize; n++) {
      await expectGgufError(dir.write(image.buffer.subarray(0, n)), 'GGUF_TENSOR_OUT_OF_BOUNDS');
    }
  });

  it('GGUF_BAD_VALUE_TYPE', async () => {
    const file = dir.write(patched(image, (b) => patchU32(b, kvAt(layout, 'tokenizer.ggml.bos_token_id').type, 13)));
    await expectGgufError(file, 'GGUF_BAD_VALUE_TYPE');
  });

  it('GGUF_BAD_VALUE_TYPE: array element type', async () => {
    const file = dir.write(patched(image, (b) => patchU32(b, kvAt(layout, 'tokenizer.ggml.tokens').value, 99)));
    await expectGgufError(file, 'GGUF_BAD_VALUE_TYPE');
  });

  it('GGUF_DUPLICATE: metadata key', async () => {
    const eos = kvAt(layout, 'tokenizer.ggml.eos_token_id');
    const file = dir.write(patched(image, (b) => b.write('tokenizer.ggml.bos_token_id', eos.keyBytes, 'latin1')));
    await expectGgufError(file, 'GGUF_DUPLICATE');
  });

  it('GGUF_DUPLICATE: tensor name', async () => {
    const file = dir.write(patched(image, (b) => b.write('a', tensorAt(layout, 'b.weight').nameBytes, 'latin1')));
    await expectGgufError(file, 'GGUF_DUPLICATE');
  });

  it('GGUF_BAD_TENSOR_INFO: n_dims 5', async () => {
    const file = dir.write(patched(image, (b) => patchU32(b, tensorAt(layout, 'a.weight').nDims, 5)));
    await expectGgufError(file, 'GGUF_BAD_TENSOR_INFO');
  });

  it('GGUF_BAD_TENSOR_INFO: zero dimension', async () => {
    const file = dir.write(patched(image, (b) => patchU64(b, tensorAt(layout, 'a.weight').dims[1], 0n)));
    await expectGgufError(file, 'GGUF_BAD_TENSOR_INFO');
  });

  it('GGUF_BAD_TENSOR_INFO: negative dimension', async () => {
    const file = dir.write(patched(image, (b) => patchU64(b, tensorAt(layout, 'a.weight').dims[0], 1n << 63n)));
    await expectGgufError(file, 'GGUF_BAD_TENSOR_INFO');
  });

  it('GGUF_BAD_TENSOR_INFO: misaligned offset', async () => {
    const file = dir.write(patched(image, (b) => patchU64(b, tensorAt(layout, 'b.weight').offset, 36n)));
    await expectGgufError(file, 'GGUF_BAD_TENSOR_INFO');
  });

  it('GGUF_BAD_TENSOR_INFO: ne[0] not a multiple of the block size', async () => {
    // a.weight as Q8_0 [4, 2]: 4 is not a multiple of 32.
    const file = dir.write(patched(image, (b) => patchU32(b, tensorAt(layout, 'a.weight').type, GgufTensorType.Q8_0)));
    await expectGgufError(file, 'GGUF_BAD_TENSOR_INFO');
  });

  it('GGUF_UNKNOWN_TENSOR_TYPE', async () => {
    const file = dir.write(patched(image, (b) => patchU32(b, tensorAt(layout, 'a.weight').type, 1000)));
    await expectGgufError(file, 'GGUF_UNKNOWN_TENSOR_TYPE');
  });

  it('GGUF_TENSOR_OUT_OF_BOUNDS: offset past the end', async () => {
    const file = dir.write(patched(image, (b) => patchU64(b, tensorAt(layout, 'b.weight').offset, 1n << 20n)));
    await expectGgufError(file, 'GGUF_TENSOR_OUT_OF_BOUNDS');
  });

  it('GGUF_TENSOR_OVERLAP', async () => {
    const file = dir.write(patched(image, (b) => patchU64(b, tensorAt(layout, 'b.weight').offset, 0n)));
    await expectGgufError(file, 'GGUF_TENSOR_OVERLAP');
  });

  describe('GGUF_BAD_VALUE: general.alignment', () => {
    const aligned = smallGguf({ alignment: 64 });
    const alignment = kvAt(aligned.layout, 'general.alignment');

    it('is read when valid', async () => {
      const info = await inspectGguf(dir.write(aligned.buffer));
      expect(info.alignment).toBe(64);
      expect(info.dataOffset % 64).toBe(0);
    });
    it.each([0, 3, 48])('rejects %d', async (value) => {
      await expectGgufError(dir.write(patched(aligned, (b) => patchU32(b, alignment.value, value))), 'GGUF_BAD_VALUE');
    });
    it('rejects a type other than uint32', async () => {
      // int32 has the size of uint32, so only the type is wrong.
      await expectGgufError(dir.write(patched(aligned, (b) => patchU32(b, alignment.type, 5))), 'GGUF_BAD_VALUE');
    });
  });

  it('GGUF_TRUNCATED: huge array count', async () => {
    const tokens = kvAt(layout, 'tokenizer.ggml.tokens');
    const file = dir.write(patched(image, (b) => patchU64(b, tokens.arrayCount as number, 1n << 63n)));
    await expectGgufError(file, 'GGUF_TRUNCATED');
  });

  it('GGUF_TRUNCATED: huge string length', async () => {
    const architecture = kvAt(layout, 'general.architecture');
    const file = dir.write(patched(image, (b) => patchU64(b, architecture.value, 1n << 63n)));
    await expectGgufError(file, 'GGUF_TRUNCATED');
  });

  it('GGUF_TRUNCATED: huge tensor and metadata counts', async () => {
    await expectGgufError(dir.write(patched(image, (b) => patchU64(b, layout.kvCount, (1n << 64n) - 1n))), 'GGUF_TRUNCATED');
    await expectGgufError(dir.write(patched(image, (b) => patchU64(b, layout.tensorCount, 1n << 62n))), 'GGUF_TRUNCATED');
  });

  it('IO_ERROR: missing file', async () => {
    const error = await rejection(inspectGguf(path.join(dir.path, 'missing.gguf')));
    expect(error).toBeInstanceOf(IoError);
    expect((error as IoError).code).toBe('IO_ERROR');
  });

  it('IO_ERROR: a directory', async () => {
    const error = await rejection(inspectGguf(dir.path));
    expect(error).toBeInstanceOf(IoError);
    expect((error as IoError).code).toBe('IO_ERROR');
  });

  it('INVALID_OPTION: a path that is not a string', async () => {
    const error = await rejection(inspectGguf(42 as unknown as string));
    expect(error).toBeInstanceOf(InvalidOptionError);
  });

  it('inspectGgufBuffer throws the same typed errors synchronously', () => {
    expectThrow(() => inspectGgufBuffer(image.buffer.subarray(0, 10)), GgufError, 'GGUF_TRUNCATED');
    expect(inspectGgufBuffer(image.buffer).tensors).toHaveLength(2);
  });
});

describe('GgufWriter round trip', () => {
  const dir = new TempDir();
  afterAll(() => dir.remove());

  function everyType(version: 2 | 3): GgufWriter {
    const w = new GgufWriter({ version, alignment: 64 });
    w.add('u8', 'uint8', 255).add('i8', 'int8', -128).add('u16', 'uint16', 65535).add('i16', 'int16', -32768);
    w.add('u32', 'uint32', 4294967295).add('i32', 'int32', -2147483648).add('f32', 'float32', 0.5);
    w.add('bool', 'bool', true).add('str', 'string', 'héllo ✓').add('f64', 'float64', Math.PI);
    w.add('u64.small', 'uint64', 42).add('u64.big', 'uint64', 2n ** 64n - 1n);
    w.add('i64.small', 'int64', -42n).add('i64.big', 'int64', -(2n ** 63n));
    w.addArray('arr.str', 'string', ['a', '', 'ccc']);
    w.addArray('arr.i32', 'int32', [-1, 7]);
    w.addArray('arr.empty', 'float32', []);
    w.addArray('arr.bool', 'bool', [true, false]);
    w.addArray('arr.nested', 'array', [
      { elementType: 'uint16', values: [1, 2] },
      { elementType: 'array', values: [{ elementType: 'string', values: ['deep'] }] },
    ]);
    w.addTensor('f32.weight', GgufTensorType.F32, [4, 3], new Uint8Array(new Float32Array(12).fill(1.5).buffer));
    w.addTensor('q8_0.weight', GgufTensorType.Q8_0, [64, 2], new Uint8Array(4 * 34).fill(7));
    const q8kv = new Uint8Array(2 * (8 + 32)).fill(9);
    w.addTensor('q8_KV.weight', GgufTensorType.Q8_KV, [32, 2], { byteLength: q8kv.length, bytes: () => q8kv });
    return w;
  }

  function checkEveryType(info: GgufInfo, version: number): void {
    expect(info.version).toBe(version);
    expect(info.alignment).toBe(64);
    const m = info.metadata;
    expect(m.get('u8')).toBe(255);
    expect(m.get('i8')).toBe(-128);
    expect(m.get('u16')).toBe(65535);
    expect(m.get('i16')).toBe(-32768);
    expect(m.get('u32')).toBe(4294967295);
    expect(m.get('i32')).toBe(-2147483648);
    expect(m.get('f32')).toBe(0.5);
    expect(m.get('bool')).toBe(true);
    expect(m.get('str')).toBe('héllo ✓');
    expect(m.get('f64')).toBe(Math.PI);
    expect(m.get('u64.small')).toBe(42);
    expect(m.get('u64.big')).toBe(2n ** 64n - 1n);
    expect(m.get('i64.small')).toBe(-42);
    expect(m.get('i64.big')).toBe(-(2n ** 63n));
    expect(m.get('arr.str')).toEqual(['a', '', 'ccc']);
    expect(m.get('arr.i32')).toEqual([-1, 7]);
    expect(m.get('arr.empty')).toEqual([]);
    expect(m.get('arr.bool')).toEqual([true, false]);
    expect(m.get('arr.nested')).toEqual([[1, 2], [['deep']]]);
    expect(info.metadataTypes.get('u64.big')).toEqual({ type: 'uint64' });
    expect(info.metadataTypes.get('arr.nested')).toEqual({ type: 'array', arrayType: 'array' });
    expect(info.tensors.map((t) => [t.name, t.type, t.typeId, t.shape, t.nbytes])).toEqual([
      ['f32.weight', 'f32', 0, [4, 3], 48],
      ['q8_0.weight', 'q8_0', 8, [64, 2], 136],
      ['q8_KV.weight', 'q8_KV', 151, [32, 2], 80],
    ]);
    for (const t of info.tensors) expect(t.offset % 64).toBe(0);
  }

  it.each([2, 3] as const)('keeps every value type in version %d (buffer)', (version) => {
    const { buffer } = everyType(version).build();
    checkEveryType(inspectGgufBuffer(buffer), version);
  });

  it('writes the same bytes to a file as to a buffer', async () => {
    const writer = everyType(3);
    const file = path.join(dir.path, 'every-type.gguf');
    const layout = await writer.writeFile(file);
    const { buffer } = writer.build();
    expect(fs.readFileSync(file).equals(buffer)).toBe(true);
    expect(layout.fileSize).toBe(buffer.length);
    const info = await inspectGguf(file);
    checkEveryType(info, 3);
    const f32 = info.tensors[0];
    expect(new Float32Array(buffer.buffer.slice(info.dataOffset + f32.offset, info.dataOffset + f32.offset + 48))[11]).toBe(1.5);
  });

  it('rejects values that do not fit their type, with InvalidOptionError', () => {
    const w = new GgufWriter();
    expect(() => w.add('x', 'uint8', 256)).toThrow(InvalidOptionError);
    expect(() => w.add('x', 'int32', 1.5)).toThrow(InvalidOptionError);
    expect(() => w.add('x', 'uint64', -1n)).toThrow(InvalidOptionError);
    expect(() => w.add('x', 'string', 3)).toThrow(InvalidOptionError);
    expect(() => w.addArray('x', 'array', [1])).toThrow(InvalidOptionError);
    expect(() => w.add('general.alignment', 'uint32', 64)).toThrow(InvalidOptionError);
    w.addString('x', 'ok');
    expect(() => w.addString('x', 'again')).toThrow(InvalidOptionError);
    expect(() => w.addTensor('t', GgufTensorType.F32, [4], new Uint8Array(15))).toThrow(InvalidOptionError);
    expect(() => w.addTensor('t', GgufTensorType.Q8_0, [16], new Uint8Array(17))).toThrow(InvalidOptionError);
    expect(() => w.addTensor('t', GgufTensorType.F32, [1, 1, 1, 1, 1], new Uint8Array(4))).toThrow(InvalidOptionError);
    expect(() => new GgufWriter({ alignment: 48 })).toThrow(InvalidOptionError);
  });
});

describe('metadata accessors', () => {
  const w = new GgufWriter();
  w.addString('name', 'x').addUint32('count', 7).add('signed', 'int32', 5).add('negative', 'int32', -1);
  w.addFloat32('eps', 0.25).addBool('flag', true).add('big', 'uint64', 2n ** 60n);
  w.addArray('tokens', 'string', ['a', 'b']).addArray('types', 'int32', [1, 3]);
  const info = inspectGgufBuffer(w.build().buffer);

  it('return typed values', () => {
    expect(getString(info, 'name')).toBe('x');
    expect(getU32(info, 'count')).toBe(7);
    expect(getU32(info, 'signed')).toBe(5);
    expect(getNumber(info, 'eps')).toBe(0.25);
    expect(getNumber(info, 'count')).toBe(7);
    expect(getBool(info, 'flag')).toBe(true);
    expect(getStringArray(info, 'tokens')).toEqual(['a', 'b']);
    expect(getNumberArray(info, 'types')).toEqual([1, 3]);
    expect(getArray(info, 'types', 'int32')).toEqual([1, 3]);
    expect(getOptionalNumber(info, 'absent')).toBeUndefined();
    expect(getOptionalString(info, 'name')).toBe('x');
    expect(hasKey(info, 'flag')).toBe(true);
  });

  it('GGUF_MISSING_KEY for an absent required key', () => {
    expectThrow(() => getU32(info, 'deepseek2.block_count'), GgufError, 'GGUF_MISSING_KEY');
    expectThrow(() => getString(info, 'general.architecture'), GgufError, 'GGUF_MISSING_KEY');
  });

  it('GGUF_BAD_VALUE for a wrong type or range', () => {
    expectThrow(() => getString(info, 'count'), GgufError, 'GGUF_BAD_VALUE');
    expectThrow(() => getU32(info, 'negative'), GgufError, 'GGUF_BAD_VALUE');
    expectThrow(() => getU32(info, 'eps'), GgufError, 'GGUF_BAD_VALUE');
    expectThrow(() => getNumber(info, 'big'), GgufError, 'GGUF_BAD_VALUE');
    expectThrow(() => getBool(info, 'count'), GgufError, 'GGUF_BAD_VALUE');
    expectThrow(() => getStringArray(info, 'types'), GgufError, 'GGUF_BAD_VALUE');
    expectThrow(() => getArray(info, 'name'), GgufError, 'GGUF_BAD_VALUE');
    expectThrow(() => getOptionalNumber(info, 'name'), GgufError, 'GGUF_BAD_VALUE');
  });
});

describe('fixture GGUFs', () => {
  function checkBounds(info: GgufInfo): void {
    for (const t of info.tensors) expect(info.dataOffset + t.offset + t.nbytes).toBeLessThanOrEqual(info.fileSize);
  }

  it.each(modelFiles)('model %s', async (file) => {
    const info = await inspectGguf(path.join(fixtures, 'models', file));
    expect([2, 3]).toContain(info.version);
    expect(getString(info, 'general.architecture')).toBe('deepseek2');
    expect(info.tensors.length).toBeGreaterThan(0);
    const vocab = getU32(info, 'deepseek2.vocab_size');
    expect(getStringArray(info, 'tokenizer.ggml.tokens')).toHaveLength(vocab);
    expect(getNumberArray(info, 'tokenizer.ggml.token_type')).toHaveLength(vocab);
    const embedding = info.tensors.find((t) => t.name === 'token_embd.weight');
    expect(embedding?.shape).toEqual([getU32(info, 'deepseek2.embedding_length'), vocab]);
    const blocks = getU32(info, 'deepseek2.block_count');
    expect(info.tensors.filter((t) => t.name.endsWith('.attn_norm.weight'))).toHaveLength(blocks);
    checkBounds(info);
  });

  it.each(tokenizerFiles)('tokenizer %s', async (file) => {
    const info = await inspectGguf(path.join(fixtures, 'tokenizer', file));
    const architecture = getString(info, 'general.architecture');
    expect(getString(info, 'tokenizer.ggml.model')).toBe('gpt2');
    expect(getString(info, 'tokenizer.ggml.pre')).toMatch(/^deepseek-/);
    const vocab = getU32(info, `${architecture}.vocab_size`);
    expect(getStringArray(info, 'tokenizer.ggml.tokens')).toHaveLength(vocab);
    expect(getNumberArray(info, 'tokenizer.ggml.token_type')).toHaveLength(vocab);
    expect(getStringArray(info, 'tokenizer.ggml.merges').length).toBeGreaterThan(0);
    expect(getU32(info, 'tokenizer.ggml.bos_token_id')).toBeLessThan(vocab);
    checkBounds(info);
  });

  it('inspects off the main thread: the event loop keeps turning', async () => {
    // Largest metadata first: the 128K-token vocab takes the longest to parse.
    const files = [
      ...tokenizerFiles.map((f) => path.join(fixtures, 'tokenizer', f)),
      ...modelFiles.map((f) => path.join(fixtures, 'models', f)),
    ].sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
    let ticks = 0;
    let running = true;
    const tick = (): void => {
      ticks++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    const pending = Promise.all(files.map((f) => inspectGguf(f)));
    const infos = await pending;
    running = false;
    expect(infos).toHaveLength(files.length);
    expect(ticks).toBeGreaterThan(0);
  });
});
