#include "deepmla/thread_pool.hpp"

#include <exception>

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

}  // namespace deepmla
