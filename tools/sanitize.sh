#!/usr/bin/env bash
# `npm run test:sanitize [-- jest args]`: the C++ tests and the jest suite against an
# ASan + UBSan build of the addon (DEEPMLA_SANITIZE, gcc's runtimes) in build-asan/.
# - The C++ test binary runs once with LeakSanitizer on (at the detected level, every
#   variant), then from test/native.test.ts (DEEPMLA_NATIVE_TEST) at one lower level.
# - node itself is not instrumented: libasan is LD_PRELOADed into it, and leak detection
#   is off there (detect_leaks=0) because V8 and node keep allocations alive at exit that
#   LeakSanitizer would report. Memory errors and undefined behaviour abort the run.
# - DEEPMLA_SANITIZED=1 lets slow suites run a subset (test/native.test.ts: one level;
#   test/forward.test.ts: every mode with an f16 and a q8_KV cache, the long fixture in
#   one mode; test/fuzz-gguf.test.ts: a fifth of its rounds).
set -euo pipefail
cd "$(dirname "$0")/.."

config=RelWithDebInfo
out=build-asan
echo "== sanitize: build ($out, ASan + UBSan, $config)"
# `build`, not `compile`: compile wipes the directory and starts over after any failure.
# -g1 (line tables) is enough for the reports' stack traces and compiles faster than -g.
nice -n 5 node node_modules/cmake-js/bin/cmake-js build --out "$out" --config "$config" \
  --CDDEEPMLA_SANITIZE=ON "--CDCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
  >"$out.log" 2>&1 || { grep -E -A5 "error|FAILED" "$out.log" | head -60; exit 1; }
addon="$PWD/$out/$config/deepmla.node"
binary="$PWD/$out/deepmla_native_test"
[ -x "$binary" ] || binary="$PWD/$out/$config/deepmla_native_test"

# halt_on_error + abort: the first report fails the run; no recovery past a bug.
common="abort_on_error=1:halt_on_error=1:print_stacktrace=1"
export UBSAN_OPTIONS="$common"

echo "== sanitize: C++ tests with LeakSanitizer"
if ! ASAN_OPTIONS="$common:detect_leaks=1" "$binary" >"$out/native-test.log" 2>&1; then
  grep -E "^FAIL|ERROR|SUMMARY|runtime error" "$out/native-test.log" | head -40
  tail -60 "$out/native-test.log"
  exit 1
fi
tail -1 "$out/native-test.log"

echo "== sanitize: jest with $addon"
libasan="$(${CXX:-g++} -print-file-name=libasan.so)"
# A small quarantine keeps RSS near the uninstrumented run's (test/resources.test.ts bounds it).
ASAN_OPTIONS="$common:detect_leaks=0:quarantine_size_mb=16:allow_user_segv_handler=1" \
LD_PRELOAD="$libasan" DEEPMLA_ADDON="$addon" DEEPMLA_NATIVE_TEST="$binary" DEEPMLA_SANITIZED=1 \
  nice -n 5 node node_modules/jest/bin/jest.js "$@"
