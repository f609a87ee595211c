// The reference of the decompressed flash (decompressed_flash.hpp): one key at a
// time, scores and the online softmax in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "deepmla/kernels.hpp"

namespace deepmla {

void decompressed_flash_scalar(const DecompressedFlashArgs& a) {
  std::vector<double> acc(static_cast<size_t>(a.dv));
  for (int64_t r = 0; r < a.n_rows; ++r) {
    const float* q = a.q[r];
    double m = a.m[r], l = a.l[r];
    float* out = a.acc + size_t(r) * a.acc_stride;
    for (int64_t c = 0; c < a.dv; ++c) acc[size_t(c)] = out[c];
    const int64_t visible = std::clamp<int64_t>(a.visible[r], 0, a.n_keys);
    for (int64_t j = 0; j < visible; ++j) {
      const float* kv = a.kv + size_t(j) * a.kv_stride;
      const float* pe = a.k_pe + j * a.rope;
      double s = 0;
      for (int64_t i = 0; i < a.nope; ++i) s += double(q[i]) * kv[i];
      for (int64_t i = 0; i < a.rope; ++i) s += double(q[a.nope + i]) * pe[i];
      s *= a.scale;
      if (s > m) {
        const double f = std::exp(m - s);
        l *= f;
        for (double& v : acc) v *= f;
        m = s;
      }
      const double p = std::exp(s - m);
      l += p;
      for (int64_t c = 0; c < a.dv; ++c) acc[size_t(c)] += p * kv[a.nope + c];
    }
    a.m[r] = float(m);
    a.l[r] = float(l);
    for (int64_t c = 0; c < a.dv; ++c) out[c] = float(acc[size_t(c)]);
  }
}

}  // namespace deepmla
