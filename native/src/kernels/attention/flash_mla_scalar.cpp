// The reference flash MLA: the cache rows dequantized by the formats' own routines, one
// score at a time, and the online softmax of the scalar attention path (ops/attention.cpp).
// Every SIMD variant is tested against it, or, for the variants that quantize their
// queries, against flash_mla_quantized_q_scalar below.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "deepmla/error.hpp"
#include "deepmla/kernels.hpp"
#include "deepmla/types.hpp"
#include "formats/blocks.hpp"
#include "kernels/attention/layout.hpp"

namespace deepmla::kernels {

namespace {
// Adds cache row v (its first dv values) with score s to row r's online softmax state.
void add_row(const FlashMlaArgs& a, int64_t r, float s, const float* v) {
  float* acc = a.acc + size_t(r) * a.acc_stride;
  if (s > a.m[r]) {
    const float f = std::exp(a.m[r] - s);
    a.l[r] *= f;
    for (int64_t c = 0; c < a.dv; ++c) acc[c] *= f;
    a.m[r] = s;
  }
  const float p = std::exp(s - a.m[r]);
  a.l[r] += p;
  for (int64_t c = 0; c < a.dv; ++c) acc[c] += p * v[c];
}
}  // namespace

void flash_mla_scalar(const FlashMlaArgs& a) {
  const FlashMlaLayout lay = flash_mla_layout(a.dk, a.n_rows);
  float* kf = reinterpret_cast<float*>(a.scratch + lay.k);
  int64_t end = a.j0;
  for (int64_t r = 0; r < a.n_rows; ++r) end = std::max(end, std::min(a.j1, a.visible[r]));
  const TypeTraits& tt = type_traits(a.k_type);
  for (int64_t c0 = a.j0; c0 < end; c0 += kFlashMlaChunk) {
    const int64_t n = std::min(kFlashMlaChunk, end - c0);
    for (int64_t j = 0; j < n; ++j) tt.dequantize_row(a.k + size_t(c0 + j) * a.k_row_bytes, kf + j * a.dk, a.dk);
    for (int64_t r = 0; r < a.n_rows; ++r) {
      const float* q = a.q[r];
      const int64_t visible = std::min(n, a.visible[r] - c0);
      for (int64_t j = 0; j < visible; ++j) {
        const float* k = kf + j * a.dk + a.k_skip;  // scores over K values [k_skip, dk)
        const int64_t dq = a.dk - a.k_skip;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int64_t i = 0;
        for (; i + 4 <= dq; i += 4) {
          s0 += q[i] * k[i];
          s1 += q[i + 1] * k[i + 1];
          s2 += q[i + 2] * k[i + 2];
          s3 += q[i + 3] * k[i + 3];
        }
        for (; i < dq; ++i) s0 += q[i] * k[i];
        add_row(a, r, ((s0 + s1) + (s2 + s3)) * a.scale, kf + j * a.dk);
      }
    }
  }
}

}  // namespace deepmla::kernels

namespace deepmla {

namespace {
// Block b of an int8 cache row: its quants and scale.
const int8_t* cache_quants(TensorType type, const uint8_t* row, int64_t b) {
  if (type == TensorType::Q8_0) return reinterpret_cast<const formats::BlockQ8_0*>(row)[b].qs;
  return reinterpret_cast<const int8_t*>(row + sizeof(formats::RowHeaderQ8_KV)) + 32 * b;
}
float cache_scale(TensorType type, const uint8_t* row, int64_t b) {
  if (type == TensorType::Q8_0) return fp16_to_fp32(reinterpret_cast<const formats::BlockQ8_0*>(row)[b].d);
  formats::RowHeaderQ8_KV h;
  std::memcpy(&h, row, sizeof h);
  return h.d;
}
}  // namespace

// The queries rounded as the int8 variants round them, each score the sum over blocks of
// (d_q d_k) * (integer dot), V dequantized by the format; the rest as flash_mla_scalar.
void flash_mla_quantized_q_scalar(const FlashMlaArgs& a) {
  if (a.k_type != TensorType::Q8_0 && a.k_type != TensorType::Q8_KV)
    fail(codes::kUnsupported, "quantized-query flash MLA needs a Q8_0 or Q8_KV cache");
  const int64_t nb = a.dk / 32;
  std::vector<int8_t> q8(size_t(a.n_rows * a.dk));
  std::vector<float> qd(size_t(a.n_rows * nb));
  for (int64_t r = 0; r < a.n_rows; ++r)
    for (int64_t b = 0; b < nb; ++b)
      qd[size_t(r * nb + b)] = kernels::quantize_query_block(a.q[r] + 32 * b, a.scale, q8.data() + r * a.dk + 32 * b);
  std::vector<float> v(size_t(a.dk));
  const TypeTraits& tt = type_traits(a.k_type);
  for (int64_t r = 0; r < a.n_rows; ++r) {
    for (int64_t j = a.j0; j < std::min(a.j1, a.visible[r]); ++j) {
      const uint8_t* row = a.k + size_t(j) * a.k_row_bytes;
      float s = 0;
      for (int64_t b = 0; b < nb; ++b) {
        const int8_t* kq = cache_quants(a.k_type, row, b);
        const int8_t* qq = q8.data() + r * a.dk + 32 * b;
        int32_t dot = 0;
        for (int i = 0; i < 32; ++i) dot += int32_t(qq[i]) * kq[i];
        s += float(dot) * (qd[size_t(r * nb + b)] * cache_scale(a.k_type, row, b));
      }
      tt.dequantize_row(row, v.data(), a.dk);
      kernels::add_row(a, r, s, v.data());
    }
  }
}

}  // namespace deepmla
