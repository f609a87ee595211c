// Per-op wall time, on when DEEPMLA_PROFILE is set: where a forward pass spends its time,
// printed to stderr when the context is destroyed. Ops are grouped by kind and by their
// name without the "blk.N." prefix, so the layers of one op add up. DEEPMLA_PROFILE=warm
// leaves out each node's first prompt call: the warm-up that faults in its weights and
// buffers, which would otherwise blur the rates of big ops in a short bench.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>

namespace deepmla {

class OpProfile {
 public:
  // A profile if DEEPMLA_PROFILE is set in the environment, else nullptr.
  static OpProfile* from_environment();
  explicit OpProfile(bool skip_first) : skip_first_(skip_first) {}
  ~OpProfile();

  void add(const std::string& kind, const std::string& name, int64_t n_tokens, std::chrono::nanoseconds elapsed);

 private:
  struct Entry {
    double seconds = 0;
    int64_t calls = 0;
  };
  std::map<std::string, Entry> entries_;
  bool skip_first_;
  std::set<std::string> seen_;  // full node names, when skipping first calls
};

}  // namespace deepmla
