// Flash MLA kernel micro-benchmark: one token's attention (16 heads, one query) over n_kv
// cache rows, per K-cache type and variant, on 1 thread and split across all threads as
// the op does (splits merged). Prints the best of --reps runs in ms per layer.
//
//   c++ -O2 -std=c++17 -Inative/include -Inative/src bench/attention.cpp \
//       build/libdeepmla_core.a -lpthread -o build/deepmla_bench_attention
//   build/deepmla_bench_attention [--heads 16] [--kv 2048,8192] [--reps 5] [--threads N]
//       [--only NAME]   (variants whose name contains NAME, e.g. avx512bf16)
//       [--cold 1]      (before each run, read 64 MiB: the cache comes from DRAM, as in
//                        token generation, where a layer's weights pass between two
//                        attention ops; otherwise it stays in L3 between runs)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "deepmla/kernels.hpp"
#include "deepmla/thread_pool.hpp"
#include "deepmla/types.hpp"

using namespace deepmla;

namespace {

constexpr int64_t kDk = 576, kDv = 512;

std::vector<int64_t> list(const char* s) {
  std::vector<int64_t> out;
  for (const char* p = s; *p;) {
    out.push_back(std::strtoll(p, nullptr, 10));
    p = std::strchr(p, ',');
    if (!p) break;
    ++p;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t heads = 16, reps = 5;
  int threads = int(std::thread::hardware_concurrency());
  std::vector<int64_t> kvs = {2048, 8192};
  std::string only;
  bool cold = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--heads") heads = std::atoll(argv[i + 1]);
    else if (a == "--kv") kvs = list(argv[i + 1]);
    else if (a == "--reps") reps = std::atoll(argv[i + 1]);
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--only") only = argv[i + 1];
    else if (a == "--cold") cold = std::atoi(argv[i + 1]) != 0;
  }
  ThreadPool pool(threads);
  std::vector<uint64_t> flush(cold ? (size_t(64) << 20) / 8 : 0, 1);
  uint64_t flushed = 0;
  auto evict = [&] {
    for (uint64_t v : flush) flushed += v;
  };
  std::vector<float> q(size_t(heads * kDk));
  uint64_t seed = 1;
  auto rnd = [&] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return float(int64_t(seed >> 40) % 2001 - 1000) / 1000.0f;
  };
  for (float& v : q) v = rnd();
  std::vector<const float*> qp(static_cast<size_t>(heads));
  for (int64_t h = 0; h < heads; ++h) qp[size_t(h)] = q.data() + h * kDk;
  std::printf("%-24s %6s %8s %12s %12s\n", "variant", "n_kv", "heads", "1 thread ms", "split ms");
  for (TensorType type : {TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q8_KV, TensorType::Q6_0}) {
    const int64_t max_kv = *std::max_element(kvs.begin(), kvs.end());
    const size_t rb = row_bytes(type, kDk);
    std::vector<uint8_t> cache(rb * size_t(max_kv));
    std::vector<float> row(kDk);
    for (int64_t j = 0; j < max_kv; ++j) {
      for (float& v : row) v = rnd();
      type_traits(type).quantize_row(row.data(), cache.data() + size_t(j) * rb, kDk);
    }
    for (const FlashMlaKernel& kernel : flash_mla_kernels(type)) {
      if (!only.empty() && std::string(kernel.name).find(only) == std::string::npos) continue;
      for (int64_t n_kv : kvs) {
        const int64_t splits = std::max<int64_t>(1, std::min<int64_t>(4 * threads, n_kv / 256));
        const int64_t per = ((n_kv + splits - 1) / splits + 31) / 32 * 32;
        const size_t state = size_t(heads * (2 + kDv));
        std::vector<float> states(state * size_t(splits));
        std::vector<int64_t> visible(size_t(heads), n_kv);
        const size_t scratch_bytes = (flash_mla_scratch_bytes(kDk, heads) + 63) / 64 * 64;
        std::vector<uint8_t> scratch_mem(scratch_bytes * size_t(threads) + 64);
        uint8_t* scratch = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(scratch_mem.data()) + 63) / 64 * 64);
        auto one = [&](int64_t s, int thread, int64_t j0, int64_t j1) {
          float* st = states.data() + size_t(s) * state;
          std::fill(st, st + heads, -std::numeric_limits<float>::infinity());
          std::fill(st + heads, st + state, 0.0f);
          FlashMlaArgs a;
          a.dk = kDk;
          a.dv = kDv;
          a.k_type = type;
          a.k = cache.data();
          a.k_row_bytes = rb;
          a.j0 = j0;
          a.j1 = j1;
          a.q = qp.data();
          a.visible = visible.data();
          a.n_rows = heads;
          a.scale = 0.07f;
          a.m = st;
          a.l = st + heads;
          a.acc = st + 2 * heads;
          a.acc_stride = kDv;
          a.scratch = scratch + size_t(thread) * scratch_bytes;
          if (j0 < j1) kernel.fn(a);
        };
        double best1 = 1e30, bestn = 1e30;
        for (int64_t r = 0; r < reps; ++r) {
          evict();
          auto t0 = std::chrono::steady_clock::now();
          one(0, 0, 0, n_kv);
          auto t1 = std::chrono::steady_clock::now();
          evict();
          auto t2 = std::chrono::steady_clock::now();
          pool.parallel_for(splits, [&](int64_t s, int thread) { one(s, thread, s * per, std::min(n_kv, (s + 1) * per)); });
          auto t3 = std::chrono::steady_clock::now();
          best1 = std::min(best1, std::chrono::duration<double, std::milli>(t1 - t0).count());
          bestn = std::min(bestn, std::chrono::duration<double, std::milli>(t3 - t2).count());
        }
        std::printf("%-24s %6ld %8ld %12.3f %12.3f\n", kernel.name, long(n_kv), long(heads), best1, bestn);
      }
    }
  }
  static volatile uint64_t sink;
  sink = flushed;  // so the flush reads are kept
  return 0;
}
