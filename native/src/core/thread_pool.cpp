#include "deepmla/thread_pool.hpp"

#include <algorithm>
#include <exception>
#include <memory>

namespace deepmla {

namespace {
// Spin iterations before a worker sleeps: long enough to bridge the gap between two
// ops of a forward pass (tens of microseconds), short enough not to burn a core when idle.
constexpr int kSpinIterations = 20000;
// While spinning, give the core away every so often (~130 us at Zen5's ~31 ns pause): on
// a loaded machine the thread we wait for may need it. Not more often: a yield can hand
// the core to another thread of the process (V8's, libuv's) for a while, and the task
// then starts late. Every 256 spins (~8 us), the worker began a token-generation GEMV
// 34-44 us after the calling thread (mean over 8000 two-task matmuls of ~200 us; Zen5,
// 3 runs), every 4096 spins 1-15 us, never 1-2 us. (tg128 itself: within the host's
// noise, 63.0 vs 61.5 t/s mean over 5 alternated pairs.)
constexpr int kYieldEvery = 4096;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void ThreadPool::run_tasks(int thread) {
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_) break;
    try {
      (*fn_)(task, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      next_task_.store(n_tasks_, std::memory_order_relaxed);  // skip the rest
    }
  }
}

void ThreadPool::worker(int thread) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      if (spin % kYieldEvery == kYieldEvery - 1) std::this_thread::yield();
      else cpu_relax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_) return;
    run_tasks(thread);
    busy_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(int64_t n_tasks, const TaskFn& fn) {
  if (n_tasks <= 0) return;
  error_ = nullptr;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
    return;
  }
  fn_ = &fn;
  n_tasks_ = n_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  busy_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  run_tasks(0);
  for (int spin = 0; busy_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin % kYieldEvery == kYieldEvery - 1) std::this_thread::yield();
    else cpu_relax();
  }
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::parallel_shares(int64_t m, int64_t share, int64_t granule, int64_t steal, const RangeFn& fn) {
  if (m <= 0) return;
  if (granule < 1) granule = 1;
  auto round_up = [&](int64_t v) { return v < granule ? granule : (v + granule - 1) / granule * granule; };
  share = round_up(share);
  steal = round_up(steal);
  const int64_t n = (m + share - 1) / share;
  if (n == 1 || n_threads_ == 1) {
    fn(0, m, 0);
    return;
  }
  if (m >= (int64_t(1) << 32)) {  // rows past 32 bits: the shares as plain tasks
    parallel_for(n, [&](int64_t p, int thread) { fn(p * share, std::min(m, (p + 1) * share), thread); });
    return;
  }
  // A share's unclaimed rows [lo, hi) in one word (lo low, hi high): its owner claims from
  // lo and a thief from hi, each with one compare-exchange.
  auto pack = [](int64_t lo, int64_t hi) { return uint64_t(lo) | uint64_t(hi) << 32; };
  std::unique_ptr<std::atomic<uint64_t>[]> parts(new std::atomic<uint64_t>[size_t(n)]);
  for (int64_t p = 0; p < n; ++p) parts[size_t(p)].store(pack(p * share, std::min(m, (p + 1) * share)));
  auto claim_from_start = [&](std::atomic<uint64_t>& part, int thread) {
    for (uint64_t v = part.load(std::memory_order_relaxed);;) {
      const int64_t lo = int64_t(v & 0xffffffffu), hi = int64_t(v >> 32);
      if (lo >= hi) return;
      // Guided: a quarter of what is left, never below steal, so that the last pieces are
      // small enough to leave a thief little to wait for.
      const int64_t take = std::min(hi - lo, std::max(steal, (hi - lo) / 4 / granule * granule));
      if (!part.compare_exchange_weak(v, pack(lo + take, hi), std::memory_order_relaxed)) continue;
      fn(lo, lo + take, thread);
      v = part.load(std::memory_order_relaxed);
    }
  };
  auto claim_from_end = [&](std::atomic<uint64_t>& part, int thread) {
    for (uint64_t v = part.load(std::memory_order_relaxed);;) {
      const int64_t lo = int64_t(v & 0xffffffffu), hi = int64_t(v >> 32);
      if (lo >= hi) return;
      const int64_t cut = std::max(lo, (hi - steal) / granule * granule);  // lo is on a granule
      if (!part.compare_exchange_weak(v, pack(lo, cut), std::memory_order_relaxed)) continue;
      fn(cut, hi, thread);
      v = part.load(std::memory_order_relaxed);
    }
  };
  // Tasks [0, n) own a share, then take from the others; the n_threads - 1 tasks after
  // them only take, so that a thread which comes when every share has an owner helps too.
  parallel_for(n + n_threads_ - 1, [&](int64_t task, int thread) {
    if (task < n) claim_from_start(parts[size_t(task)], thread);
    for (int64_t q = 1; q <= n; ++q) claim_from_end(parts[size_t((task + q) % n)], thread);
  });
}

}  // namespace deepmla
