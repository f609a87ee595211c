// The thread pool's schedules: parallel_for runs every task once; parallel_shares gives
// every row to exactly one piece, on granule boundaries, and lets an idle thread take
// rows from a share whose owner is slow.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "deepmla/thread_pool.hpp"
#include "test.hpp"

namespace {

using deepmla::ThreadPool;

struct Piece {
  int64_t r0, r1;
  int thread;
};

// Runs parallel_shares and checks the pieces: disjoint, covering [0, m), starting on
// granule multiples, each within one share. Returns the pieces.
std::vector<Piece> run_shares(ThreadPool& pool, int64_t m, int64_t share, int64_t granule, int64_t steal,
                              const std::function<void(const Piece&)>& work = {}) {
  std::mutex mutex;
  std::vector<Piece> pieces;
  std::vector<std::atomic<int>> seen(static_cast<size_t>(m));
  for (auto& s : seen) s.store(0);
  pool.parallel_shares(m, share, granule, steal, [&](int64_t r0, int64_t r1, int thread) {
    for (int64_t r = r0; r < r1; ++r) seen[size_t(r)].fetch_add(1);
    if (work) work({r0, r1, thread});
    std::lock_guard<std::mutex> lock(mutex);
    pieces.push_back({r0, r1, thread});
  });
  int bad = 0;
  for (int64_t r = 0; r < m; ++r)
    if (seen[size_t(r)].load() != 1 && bad++ < 3)
      std::fprintf(stderr, "  m=%ld share=%ld: row %ld given %d times\n", long(m), long(share), long(r), seen[size_t(r)].load());
  const int64_t s = share < granule ? granule : (share + granule - 1) / granule * granule;
  if (pool.size() == 1) {  // one thread: one stream, the whole range in one piece
    CHECK(pieces.size() == 1 && pieces[0].r0 == 0 && pieces[0].r1 == m);
    return pieces;
  }
  for (const Piece& p : pieces) {
    if (!(p.r0 < p.r1) || p.r0 % granule != 0 || p.r0 / s != (p.r1 - 1) / s) {
      if (bad++ < 3) std::fprintf(stderr, "  m=%ld share=%ld: piece [%ld, %ld)\n", long(m), long(share), long(p.r0), long(p.r1));
    }
  }
  CHECK(bad == 0);
  return pieces;
}

}  // namespace

TEST(thread_pool_parallel_for_runs_each_task_once) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
      for (auto& r : runs) r.store(0);
      pool.parallel_for(n, [&](int64_t t, int thread) {
        CHECK(thread >= 0 && thread < threads);
        runs[size_t(t)].fetch_add(1);
      });
      for (auto& r : runs) CHECK(r.load() == 1);
    }
  }
}

TEST(thread_pool_parallel_shares_cover_every_row_once) {
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    for (int64_t m : {1, 7, 8, 64, 65, 1000, 5472, 10944}) {
      const int64_t share = (m + threads - 1) / threads;
      for (int64_t granule : {1, 8}) {
        for (int64_t steal : {1, 8, 64}) run_shares(pool, m, share, granule, steal);
      }
      run_shares(pool, m, 64, 8, 8);  // more shares than threads
    }
  }
}

TEST(thread_pool_parallel_shares_idle_thread_takes_from_a_slow_share) {
  // Share 0's owner sleeps in each piece: the other thread, done with share 1, must take
  // rows from the far end of share 0 (pieces by two threads inside it).
  ThreadPool pool(2);
  const int64_t m = 4096, share = 2048;
  std::atomic<int> slow{-1};
  const std::vector<Piece> pieces = run_shares(pool, m, share, 8, 64, [&](const Piece& p) {
    if (p.r0 == 0) slow.store(p.thread);
    if (p.r0 < share && p.thread == slow.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  });
  int owner = -1, other = 0;
  for (const Piece& p : pieces)
    if (p.r0 < share) {
      if (p.r0 == 0) owner = p.thread;
      else if (p.thread != owner && p.r1 == share) ++other;
    }
  int thieves = 0;
  for (const Piece& p : pieces)
    if (p.r0 < share && p.thread != owner) ++thieves;
  CHECK(owner >= 0);
  CHECK(thieves > 0);
  CHECK(other <= 1);  // only one piece can end at the share's end
}
