#!/usr/bin/env bash
# `npm run test:avx512-emulated`: the C++ tests with the AVX512 kernel files (VNNI
# panels, AVX512-BF16 dot products, flash MLA, SwiGLU) built against SIMDe's portable
# AVX512 intrinsics (Debian libsimde-dev; the few SIMDe 0.7.4 lacks are in
# native/test/emulation/simde_extras.hpp) and every ISA level reported present, so every
# AVX512 variant is held to the scalar reference on a machine without AVX512.
# Emulation checks what the code computes, not how fast, and SIMDe is not the hardware:
# run the C++ tests on a real AVX512 machine too.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/include/simde/x86/avx512.h ]; then
  echo "SIMDe headers missing: apt-get install libsimde-dev"
  exit 1
fi
out=build-avx512-emulated
echo "== avx512 emulated: build ($out)"
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=Release -DDEEPMLA_EMULATE_AVX512=ON >"$out.log" 2>&1 &&
  nice -n 5 cmake --build "$out" --target deepmla_native_test -j 2 >>"$out.log" 2>&1 ||
  { grep -E -A5 "error|FAILED" "$out.log" | head -60; exit 1; }
echo "== avx512 emulated: C++ tests"
"$out/deepmla_native_test" >"$out/native-test.log" 2>&1 || { grep -E "^FAIL" "$out/native-test.log"; tail -40 "$out/native-test.log"; exit 1; }
grep -E "^detected_isa" "$out/native-test.log"
# The point of the run: the AVX512 variants must have been among those tested.
grep -qE "variant matmul_q8_0_avx512vnni" "$out/native-test.log" || { echo "AVX512 variants were not run"; exit 1; }
tail -1 "$out/native-test.log"
