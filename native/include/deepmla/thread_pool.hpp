#pragma once
// A fixed pool of worker threads for the graph executor. parallel_for runs fn(task,
// thread) for task in [0, n_tasks) on all threads (the caller is thread 0) and returns
// when every task is done. Workers spin briefly between ops before sleeping, because a
// token of a DeepSeek model runs about a thousand ops back to back.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace deepmla {

class ThreadPool {
 public:
  using TaskFn = std::function<void(int64_t task, int thread)>;

  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  void parallel_for(int64_t n_tasks, const TaskFn& fn);

  // Rows [0, m) for bandwidth-bound work (a GEMV): one contiguous share of `share` rows
  // per task, the stream the prefetchers follow, claimed from its start in pieces that
  // shrink towards `steal` rows; a thread whose share is done then takes `steal` rows at
  // a time from the far end of the others'. So when one core runs slower (a noisy
  // neighbour, a late start) the other finishes its work instead of waiting at the end.
  // fn(r0, r1, thread) runs each piece; every row is in exactly one piece, and pieces
  // start on multiples of granule (share and steal are rounded up to it). One thread, or
  // one share, runs [0, m) as one piece.
  using RangeFn = std::function<void(int64_t r0, int64_t r1, int thread)>;
  void parallel_shares(int64_t m, int64_t share, int64_t granule, int64_t steal, const RangeFn& fn);

 private:
  void worker(int thread);
  void run_tasks(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> busy_{0};
  int64_t n_tasks_ = 0;
  const TaskFn* fn_ = nullptr;
  bool stop_ = false;
  // The first exception a task threw; rethrown by parallel_for on the caller.
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

}  // namespace deepmla
