/**
 * Runs the C++ test binary (formats, kernels against scalar, GGUF parsing) once per
 * instruction-set level this machine supports, capped with DEEPMLA_ISA, so every SIMD
 * variant and the dispatch at every level are exercised.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '..');
const exe = process.platform === 'win32' ? '.exe' : '';

// Lowest first; matches isa_name() in native/src/cpu/cpu.cpp.
const LEVELS = ['scalar', 'avx2', 'avx512', 'avx512vnni', 'avx512bf16', 'amx'];

function findBinary(): string | undefined {
  const candidates = [
    process.env.DEEPMLA_NATIVE_TEST,
    path.join(root, 'build', `deepmla_native_test${exe}`),
    path.join(root, 'build', 'Release', `deepmla_native_test${exe}`),
  ];
  return candidates.find((p): p is string => !!p && fs.existsSync(p));
}

function run(binary: string, args: string[], isa?: string) {
  const env = { ...process.env };
  if (isa) env.DEEPMLA_ISA = isa;
  else delete env.DEEPMLA_ISA;
  const result = spawnSync(binary, args, { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: result.status, signal: result.signal, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

// The binary's 'N passed, N failed' summary (its last line).
function summary(stdout: string): { passed: number; failed: number } | undefined {
  const lines = stdout.trim().split('\n');
  const match = /^(\d+) passed, (\d+) failed$/.exec(lines[lines.length - 1] ?? '');
  return match ? { passed: Number(match[1]), failed: Number(match[2]) } : undefined;
}

const binary = findBinary();

describe('native C++ tests', () => {
  if (!binary) {
    test('test binary exists', () => {
      throw new Error(
        'deepmla_native_test not found in build/ or build/Release/ (or $DEEPMLA_NATIVE_TEST): ' +
          "build it with 'npm run build:native' or cmake --build <dir> --target deepmla_native_test",
      );
    });
    return;
  }

  // Ask the binary itself which level CPUID + XGETBV allow, so both agree.
  const probe = run(binary, ['cpu_reports_isa']);
  const detected = /detected_isa=(\w+)/.exec(probe.stdout)?.[1] ?? 'scalar';
  const supported = LEVELS.slice(0, Math.max(1, LEVELS.indexOf(detected) + 1));
  // Under ASan (tools/sanitize.sh) the binary has just run at the detected level, which
  // tests every variant the machine has; the level below it keeps the capped dispatch in
  // the run without repeating the rest (five levels took ~8 of CI's 20 minutes).
  const below = supported[supported.length - 2];
  const levels = process.env.DEEPMLA_SANITIZED && below ? [below] : supported;

  test('the binary reports a known ISA level', () => {
    expect(probe.status).toBe(0);
    expect(LEVELS).toContain(detected);
  });

  test.each(levels)('all cases pass with DEEPMLA_ISA=%s', (isa) => {
    const result = run(binary, [], isa);
    const counts = summary(result.stdout);
    if (result.status !== 0 || !counts || counts.failed !== 0) {
      // Show the failing cases and their CHECK output, not just the exit code.
      const failures = result.stdout.split('\n').filter((line) => line.startsWith('FAIL'));
      throw new Error(
        `DEEPMLA_ISA=${isa}: exit ${result.status} signal ${result.signal}\n` +
          `${failures.join('\n')}\n${result.stderr.slice(-8000)}\n${result.stdout.slice(-2000)}`,
      );
    }
    expect(result.stdout).toContain(`active_isa=${isa}`);
    expect(counts.passed).toBeGreaterThan(0);
  });
});
