#include "op_profile.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace deepmla {

OpProfile* OpProfile::from_environment() {
  const char* v = std::getenv("DEEPMLA_PROFILE");
  if (v == nullptr || *v == '\0' || std::string(v) == "0") return nullptr;
  return new OpProfile(std::string(v) == "warm");
}

void OpProfile::add(const std::string& kind, const std::string& name, int64_t n_tokens, std::chrono::nanoseconds elapsed) {
  if (skip_first_ && n_tokens > 1 && seen_.insert(kind + " " + name).second) return;
  std::string key = name;
  if (key.rfind("blk.", 0) == 0) {
    const size_t dot = key.find('.', 4);
    if (dot != std::string::npos) key = key.substr(dot + 1);
  }
  // Token generation and prompt processing spend their time differently: keep them apart.
  key = (n_tokens == 1 ? "tg " : "pp ") + kind + " " + key;
  Entry& e = entries_[key];
  e.seconds += std::chrono::duration<double>(elapsed).count();
  e.calls += 1;
}

OpProfile::~OpProfile() {
  std::vector<std::pair<std::string, Entry>> rows(entries_.begin(), entries_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (const auto& r : rows) total += r.second.seconds;
  std::fprintf(stderr, "deepmla profile%s: %.3f s in ops\n%10s %8s %6s  %s\n", skip_first_ ? " (first prompt call of each node left out)" : "", total, "ms", "calls", "%", "op");
  for (const auto& [key, e] : rows)
    std::fprintf(stderr, "%10.2f %8lld %6.2f  %s\n", e.seconds * 1e3, static_cast<long long>(e.calls),
                 total > 0 ? 100 * e.seconds / total : 0.0, key.c_str());
}

}  // namespace deepmla
