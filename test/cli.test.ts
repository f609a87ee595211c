/**
 * The command line in-process: `logits` writes the fixture protocol's file, `compare`
 * reads two of them, `inspect` lists a GGUF, and bad options are typed errors.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { main } from '../lib/cli/main';
import { compareLogits, readLogitsFile } from '../lib/eval/compareLogits';
import { fixturePath, readManifest } from './helpers/fixtures';

async function run(args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const out: string[] = [];
  const err: string[] = [];
  const write = (sink: string[]) => (chunk: string | Uint8Array): boolean => {
    sink.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
    return true;
  };
  const stdout = jest.spyOn(process.stdout, 'write').mockImplementation(write(out) as typeof process.stdout.write);
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(write(err) as typeof process.stderr.write);
  process.exitCode = 0;
  try {
    await main(['node', 'deepmla', ...args]);
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { stdout: out.join(''), stderr: err.join(''), exitCode };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deepmla-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const fixture = readManifest().fixtures.find((f) => f.name === 'v3-split.q6_0.v3-split')!;

test('logits writes the fixture protocol and agrees with the exact reference', async () => {
  const prefix = path.join(dir, 'q6');
  const r = await run(['logits', fixturePath(fixture.model), '--tokens', fixturePath(fixture.tokens), '--out', prefix,
    '--mla', '3', '--fa', 'on', '--ctk', 'q8_0', '--ubatch', '32', '--threads', '2']);
  expect(r.exitCode).toBe(0);
  expect(r.stderr).toMatch(/c\^KV \(q8_0\)/);
  const logits = readLogitsFile(`${prefix}.bin`);
  expect(logits.length).toBe((fixture.n_prompt + fixture.n_generated) * 512);
  const result = compareLogits(readLogitsFile(fixturePath(fixture.exact)), logits, 512);
  expect(result.klMedian).toBeLessThanOrEqual(fixture.bounds.q8_0.kld_median);
  expect(result.outlierFraction).toBeLessThanOrEqual(fixture.bounds.q8_0.outlier_fraction);
});

test('compare prints the statistics and fails above a threshold', async () => {
  const exact = fixturePath(fixture.exact);
  const ik = fixturePath(`ik/${fixture.name}.mla1-fa0-f16-ub512.bin`);
  const json = await run(['compare', exact, ik, '--json']);
  expect(json.exitCode).toBe(0);
  const parsed = JSON.parse(json.stdout) as { rows: number; klMedian: number };
  expect(parsed.rows).toBe(80);
  expect(parsed.klMedian).toBeGreaterThan(0);
  const strict = await run(['compare', exact, ik, '--max-kld-median', '1e-12']);
  expect(strict.exitCode).toBe(1);
  expect(strict.stdout).toMatch(/KL median/);
});

test('inspect lists metadata and tensors', async () => {
  const r = await run(['inspect', fixturePath('models/v3-split.f32.gguf')]);
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toMatch(/general\.architecture = "deepseek2"/);
  expect(r.stdout).toMatch(/blk\.0\.attn_k_b\.weight f32 \[128, 512, 4\]/);
});

test('bad options and files are reported as typed errors with exit code 1', async () => {
  const bad = await run(['logits', fixturePath(fixture.model), '--tokens', fixturePath(fixture.tokens), '--out', path.join(dir, 'x'), '--mla', '5']);
  expect(bad.exitCode).toBe(1);
  expect(bad.stderr).toMatch(/INVALID_OPTION/);
  const missing = await run(['inspect', path.join(dir, 'missing.gguf')]);
  expect(missing.exitCode).toBe(1);
  expect(missing.stderr).toMatch(/IO_ERROR/);
});

test('DEEPMLA_PROFILE=1 prints where the time went, per op, when the context goes away', () => {
  // A child process: the profile is read from the environment when a context is created.
  const { spawnSync } = require('child_process') as typeof import('child_process');
  const cli = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
  const model = fixturePath('models/v3-split.q6_0.gguf');
  const args = [cli, 'bench', model, '--pp', '16', '--tg', '2', '--reps', '1', '--threads', '2'];
  const profiled = spawnSync(process.execPath, args, { env: { ...process.env, DEEPMLA_PROFILE: '1' }, encoding: 'utf8' });
  expect(profiled.status).toBe(0);
  expect(profiled.stderr).toMatch(/deepmla profile: [\d.]+ s in ops/);
  expect(profiled.stderr).toMatch(/^ +[\d.]+ +\d+ +[\d.]+ +pp matmul output$/m);
  expect(profiled.stderr).toMatch(/^ +[\d.]+ +\d+ +[\d.]+ +tg matmul output$/m);
  const plain = spawnSync(process.execPath, args, { env: { ...process.env, DEEPMLA_PROFILE: '' }, encoding: 'utf8' });
  expect(plain.status).toBe(0);
  expect(plain.stderr).not.toContain('deepmla profile');
});
