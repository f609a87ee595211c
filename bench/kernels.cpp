// Micro-benchmark of the matmul kernels (one core unless --threads): GMAC/s per weight
// type and activation count n, GB/s of weights for GEMV, and a plain read-bandwidth
// reference. Built by the optional target deepmla_bench_kernels; not a test (timings).
//   build/deepmla_bench_kernels [--threads N] [--reps R] [--types q8_0,q6_0,...] [--n 1,2,512]
//                               [--k K] [--m M] [--cpu-time 1] [--weights-file GGUF] [--copies C]
// --copies C: C copies of the weights, a call (and a read loop) using the next one, so
// that with C x the matrix beyond L3 each call reads its weights from DRAM, as a routed
// expert's do in a micro-batch and every weight does in token generation (with --m, a
// GEMV over one model-sized matrix, not the default 256 MiB; a call of under ~1 ms then
// also times the start of its threads).
// --swiglu ROWS instead times each SwiGLU variant (one core), ns per element, on ROWS
// rows of --k values (default 1408; 3072 x 1408: a 512-token micro-batch's 6 experts per token of
// DeepSeek-V2-Lite, 52 MB of g, u and out) and on one row again and again (in L1).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <time.h>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <immintrin.h>

#include "deepmla/kernels.hpp"
#include "deepmla/types.hpp"

using namespace deepmla;

namespace {

// A read-only private mapping of a whole file, as the model loader maps a GGUF.
struct MappedWeights {
  const uint8_t* data = nullptr;
  size_t size = 0;
  MappedWeights() = default;
  MappedWeights(const MappedWeights&) = delete;
  MappedWeights(MappedWeights&& o) noexcept { *this = std::move(o); }
  MappedWeights& operator=(MappedWeights&& o) noexcept {
    std::swap(data, o.data), std::swap(size, o.size);
    return *this;
  }
  ~MappedWeights() {
    if (data) munmap(const_cast<uint8_t*>(data), size);
  }
};

MappedWeights map_weights(const char* path) {
  MappedWeights out;
  const int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    std::fprintf(stderr, "cannot open %s\n", path);
    std::exit(1);
  }
  void* p = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "cannot map %s\n", path);
    std::exit(1);
  }
  out.data = static_cast<const uint8_t*>(p), out.size = size_t(st.st_size);
  return out;
}

// Anonymous memory advised for 2 MiB pages: on a VM with 2-level page walks a 4 KiB-page
// stream reads markedly slower (here 21-22 against 29.5 GB/s on 2 threads), so both the
// read loop and the weights use this, and the read loop is the machine's best.
struct HugeBuffer {
  uint8_t* data = nullptr;
  size_t size = 0, mapped = 0;
  explicit HugeBuffer(size_t bytes) : size(bytes) {
    constexpr size_t kHuge = size_t(2) << 20;
    mapped = (bytes + 2 * kHuge - 1) / kHuge * kHuge;
    void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "cannot allocate %zu bytes\n", bytes);
      std::exit(1);
    }
    base = static_cast<uint8_t*>(p);
    data = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~uintptr_t(kHuge - 1));
    (void)madvise(data, bytes, MADV_HUGEPAGE);
    std::memset(data, 0, bytes);
  }
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
  ~HugeBuffer() { munmap(base, mapped); }

 private:
  uint8_t* base = nullptr;
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double thread_cpu_time() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Runs fn(thread) on `threads` threads (thread 0 is the caller) and returns seconds: the
// caller's CPU time when single-threaded (the machine is shared: time spent preempted
// is not the kernel's), else wall time, or with cpu_time the largest thread CPU time
// (what the slowest thread would take alone; under load the threads may not overlap,
// so this flatters shared-bandwidth results: print both).
bool g_cpu_time = false;

template <class Fn>
double timed(int threads, Fn fn) {
  if (threads == 1) {
    const double c0 = thread_cpu_time();
    fn(0);
    return thread_cpu_time() - c0;
  }
  std::vector<double> cpu(size_t(threads), 0.0);
  auto body = [&](int t) {
    const double c0 = thread_cpu_time();
    fn(t);
    cpu[size_t(t)] = thread_cpu_time() - c0;
  };
  const double t0 = now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (std::thread& th : pool) th.join();
  const double wall = now() - t0;
  return g_cpu_time ? *std::max_element(cpu.begin(), cpu.end()) : wall;
}

// Median over `reps` of the best-of-a-burst time of one call.
template <class Fn>
double median_time(int reps, Fn call) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    double best = 1e30;
    const double start = now();
    do best = std::min(best, call()); while (now() - start < 0.15);
    t.push_back(best);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Streaming read: 4 independent 256-bit loads per iteration over a buffer far beyond L3,
// each thread its own contiguous part (as the GEMV row split does).
__attribute__((target("avx2"))) uint64_t read_stream(const uint8_t* p, size_t bytes) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 128 <= bytes; i += 128) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint64_t out[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3)));
  return out[0] + out[1] + out[2] + out[3];
}

double read_bandwidth(int threads, int reps) {
  const size_t n = size_t(512) << 20;  // 512 MiB: far beyond L3
  HugeBuffer buf(n);  // written once (zeros) by its constructor: every page is faulted in
  volatile uint64_t sink = 0;
  const double t = median_time(reps, [&] {
    return timed(threads, [&](int th) {
      const size_t per = n / size_t(threads);
      sink = sink + read_stream(buf.data + per * size_t(th), per);
    });
  });
  return double(n) / t / 1e9;
}

void bench_swiglu(int64_t rows, int64_t cols, int reps) {
  const size_t n = size_t(rows * cols);
  std::vector<float> g(n), u(n), out(n);
  uint64_t s = 88172645463325252ull;
  auto rnd = [&] { s ^= s << 13, s ^= s >> 7, s ^= s << 17; return float(int64_t(s % 2001) - 1000) / 250.0f; };
  for (size_t i = 0; i < n; ++i) g[i] = rnd(), u[i] = rnd();
  for (const SwigluKernel& kernel : swiglu_kernels()) {
    // Separate out: in place (as moe_ffn) would feed each rep the last one's results.
    const double all = median_time(reps, [&] {
      return timed(1, [&](int) {
        for (int64_t r = 0; r < rows; ++r)
          kernel.fn(g.data() + r * cols, u.data() + r * cols, out.data() + r * cols, cols);
      });
    });
    const double one = median_time(reps, [&] {
      return timed(1, [&](int) {
        for (int rep = 0; rep < 1000; ++rep) kernel.fn(g.data(), u.data(), out.data(), cols);
      });
    });
    std::printf("%-16s %ld x %ld: %6.3f ns/element   1 row x 1000 (in L1): %6.3f ns/element\n", kernel.name,
                long(cols), long(rows), all / double(n) * 1e9, one / (1000.0 * double(cols)) * 1e9);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 5;
  int64_t k = 2048, m_fixed = 0, swiglu_rows = 0, copies = 1;
  bool k_given = false;
  const char* weights_file = nullptr;
  std::string types = "q8_0,q6_0,q8_KV,f16,bf16,f32";
  std::vector<int64_t> ns = {1, 2, 4, 8, 16, 64, 512};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--types")) types = argv[i + 1];
    else if (!std::strcmp(argv[i], "--k")) k = std::atoll(argv[i + 1]), k_given = true;
    else if (!std::strcmp(argv[i], "--m")) m_fixed = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--copies")) copies = std::max<int64_t>(1, std::atoll(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--cpu-time")) g_cpu_time = std::atoi(argv[i + 1]) != 0;
    else if (!std::strcmp(argv[i], "--swiglu")) swiglu_rows = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--weights-file")) weights_file = argv[i + 1];
    else if (!std::strcmp(argv[i], "--n")) {
      ns.clear();
      for (const char* p = argv[i + 1]; *p;) {
        ns.push_back(std::strtoll(p, const_cast<char**>(&p), 10));
        if (*p == ',') ++p;
      }
    }
  }
  if (swiglu_rows > 0) {
    bench_swiglu(swiglu_rows, k_given ? k : 1408, reps);
    return 0;
  }
  std::printf("read bandwidth (AVX2 stream, 512 MiB), %d thread(s): %.1f GB/s%s\n", threads,
              read_bandwidth(threads, reps), threads > 1 ? (g_cpu_time ? " [max thread CPU time]" : " [wall]") : "");
  const TensorType all[] = {TensorType::Q8_0, TensorType::Q6_0, TensorType::Q8_KV,
                            TensorType::F16,  TensorType::BF16, TensorType::F32};
  for (TensorType type : all) {
    if (types.find(type_name(type)) == std::string::npos) continue;
    const TypeTraits& tt = type_traits(type);
    for (int64_t n : ns) {
      const MatmulKernel& kernel = matmul_kernel(type, n);  // what a micro-batch of n rows takes
      // GEMV-like n: a matrix of about 256 MiB, far beyond L3 (bandwidth); GEMM: 2048 rows.
      const size_t wrb = row_bytes(type, k), xrb = activation_stride(kernel, k);
      int64_t m = m_fixed ? m_fixed : n <= 8 ? int64_t((size_t(256) << 20) / wrb) / 64 * 64 : 2048;
      // --weights-file: the bandwidth-bound cases read a mapping of that file instead of
      // anonymous memory (page-cache pages, as a model's mmapped weights are); its bytes
      // are not valid blocks, which changes nothing but the (unprinted) outputs.
      MappedWeights mapped;
      if (weights_file && n <= 8) {
        mapped = map_weights(weights_file);
        m = std::min<int64_t>(m, int64_t(mapped.size / wrb) / 64 * 64);
      }
      const int64_t n_copies = mapped.data || (n <= 8 && !m_fixed) ? 1 : copies;  // 256 MiB needs none
      HugeBuffer w(mapped.data ? 0 : wrb * size_t(m) * size_t(n_copies));
      std::vector<uint8_t> x(xrb * size_t(n));
      std::vector<float> f(static_cast<size_t>(k)), y(static_cast<size_t>(m * n));
      uint64_t s = 88172645463325252ull;
      auto rnd = [&] { s ^= s << 13, s ^= s >> 7, s ^= s << 17; return float(int64_t(s % 2001) - 1000) / 1000.0f; };
      for (int64_t r = 0; r < m && !mapped.data; ++r) {
        for (float& v : f) v = rnd();
        tt.quantize_row(f.data(), w.data + size_t(r) * wrb, k);
      }
      for (int64_t c = 1; c < n_copies; ++c) std::memcpy(w.data + size_t(c) * wrb * size_t(m), w.data, wrb * size_t(m));
      const uint8_t* wd = mapped.data ? mapped.data : w.data;
      int64_t next_copy = 0;
      auto next_weights = [&] {
        const uint8_t* wc = wd + size_t(next_copy) * wrb * size_t(m);
        next_copy = (next_copy + 1) % n_copies;
        return wc;
      };
      const QuantizeRowFn quantize = activation_quantizer(kernel.act_type);
      for (int64_t i = 0; i < n; ++i) {
        for (float& v : f) v = rnd();
        quantize(f.data(), x.data() + size_t(i) * xrb, k);
      }
      auto rows_of = [&](int th, int64_t* r0, int64_t* r1) {
        const int64_t per = (m / threads + 7) / 8 * 8;
        *r0 = std::min(m, per * th), *r1 = std::min(m, *r0 + per);
      };
      auto run_kernel = [&] {
        const uint8_t* wc = next_weights();
        return timed(threads, [&](int th) {
          int64_t r0, r1;
          rows_of(th, &r0, &r1);
          kernel.fn(k, wc, wrb, r0, r1, x.data(), xrb, n, y.data(), size_t(m));
        });
      };
      if (n > 8) {
        const double t = median_time(reps, run_kernel);
        std::printf("%-24s k=%ld m=%-6ld n=%-4ld %7.1f GMAC/s %7.1f GB/s of weights\n", kernel.name, long(k),
                    long(m), long(n), double(k) * double(m) * double(n) / t / 1e9, double(wrb) * double(m) / t / 1e9);
      } else {
        // Bandwidth-bound: alternate the kernel with a plain AVX2 read of the same rows by
        // the same threads, so both see the same machine load; report both and the
        // median ratio of adjacent pairs.
        volatile uint64_t sink = 0;
        auto run_read = [&] {
          const uint8_t* wc = next_weights();
          return timed(threads, [&](int th) {
            int64_t r0, r1;
            rows_of(th, &r0, &r1);
            sink = sink + read_stream(wc + size_t(r0) * wrb, size_t(r1 - r0) * wrb);
          });
        };
        std::vector<double> tk, tr, ratio;
        for (int rep = 0; rep < reps; ++rep) {
          const double a = median_time(1, run_read), b = median_time(1, run_kernel);
          tr.push_back(a), tk.push_back(b), ratio.push_back(a / b);
        }
        std::sort(tk.begin(), tk.end()), std::sort(tr.begin(), tr.end()), std::sort(ratio.begin(), ratio.end());
        const double t = tk[tk.size() / 2], bytes = double(wrb) * double(m);
        std::printf("%-24s k=%ld m=%-6ld n=%-4ld %7.1f GMAC/s %7.1f GB/s of weights, read loop %5.1f GB/s, ratio %.2f\n",
                    kernel.name, long(k), long(m), long(n), double(k) * double(m) * double(n) / t / 1e9, bytes / t / 1e9,
                    bytes / tr[tr.size() / 2] / 1e9, ratio[ratio.size() / 2]);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
