#!/usr/bin/env bash
# `npm run fuzz [-- SECONDS]` (default 60): builds the libFuzzer target native/fuzz/fuzz_gguf.cpp
# with clang into build-fuzz/ (ASan + UBSan), seeds it from ../shared/fixtures
# (tools/fuzz-corpus.js) and fuzzes for SECONDS on one core. New inputs accumulate in
# build-fuzz/corpus across runs; a crash is written to build-fuzz/crash-* and fails the run.
# Needs clang and libclang-rt-14-dev (Debian: apt-get install clang libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
out=build-fuzz
cxx="${FUZZ_CXX:-clang++}"
command -v "$cxx" >/dev/null || { echo "fuzz: $cxx not found (apt-get install clang libclang-rt-14-dev)"; exit 1; }

echo "== fuzz: build ($out)"
cmake -S . -B "$out" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release -DDEEPMLA_FUZZ=ON >"$out.log" 2>&1 \
  || { tail -30 "$out.log"; exit 1; }
nice -n 5 cmake --build "$out" --target deepmla_fuzz_gguf >>"$out.log" 2>&1 || { tail -30 "$out.log"; exit 1; }

rm -rf "$out/seeds"
node tools/fuzz-corpus.js "$out/seeds"
mkdir -p "$out/corpus"

echo "== fuzz: $seconds s"
# -max_len: the fixture headers are about 16 KiB; 64 KiB leaves room to grow them.
# -rss_limit_mb / -malloc_limit_mb: a claimed count that allocates before checking is a bug.
# -timeout: a single input taking seconds is a hang (e.g. a loop over a claimed count).
set +e
# native/fuzz/regressions: inputs that once failed, run first like every seed.
nice -n 5 "./$out/deepmla_fuzz_gguf" "$out/corpus" "$out/seeds" native/fuzz/regressions \
  -dict=native/fuzz/gguf.dict -max_total_time="$seconds" -max_len=65536 \
  -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$out/" >"$out/last-run.log" 2>&1
status=$?
set -e
grep -E "INITED|DONE|ERROR|SUMMARY|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" "$out/last-run.log" || true
if [ "$status" -ne 0 ]; then
  echo "fuzz: the fuzzer failed (exit $status); see $out/last-run.log and $out/crash-*"
  tail -40 "$out/last-run.log"
fi
exit "$status"
