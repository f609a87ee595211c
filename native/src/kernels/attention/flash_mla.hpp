#pragma once
// The loop of every SIMD flash MLA variant, written once over a float vector type V
// (simd_avx2.hpp, simd_avx512.hpp) and a converter of cache rows to f32 (convert.hpp).
// A variant file is one line: its symbol calls flash_mla_run<V, convert_TYPE>.
//
//   q' = q * scale for the n_rows query rows                   [n_rows, dk - k_skip]
//   for each chunk of kFlashMlaChunk cache rows in [j0, max visible):
//     K = the chunk converted to f32, once for all rows (MLA: all heads share it) [C, dk]
//     S = q' K[:, k_skip:]^T, in tiles of kScoreRows x kScoreKeys  [n_rows, C]
//     masked entries (j >= visible[r]) = -inf
//     per row: m' = max(m, max S); f = e^(m - m'); P = e^(S - m'); l = l f + sum P
//     acc = acc f + P V, V = K[:, :dv], in tiles of kFlashAccRows x kAccVecs vectors
//
// The chunk of K stays in L2 while every row's scores and values use it.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "deepmla/kernels.hpp"
#include "kernels/attention/layout.hpp"

namespace deepmla::kernels {
namespace {

constexpr int64_t kC = kFlashMlaChunk;

// Register tiles are arrays of vectors: their loops must unroll to stay in registers.
#if defined(__clang__)
#define DEEPMLA_ATTN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define DEEPMLA_ATTN_UNROLL _Pragma("GCC unroll 16")
#else
#define DEEPMLA_ATTN_UNROLL
#endif

// Converts n cache rows (k_row_bytes apart) to f32 rows of dk values, dk apart.
using ConvertFn = void (*)(const uint8_t* k, size_t k_row_bytes, int64_t n, int64_t dk, float* out);

// Scores of RB query rows (dq floats, dq apart) against KB cache rows (dk apart).
template <class V, int RB, int KB>
void score_tile(const float* q, int64_t dq, const float* k, int64_t dk, float* s) {
  using F = typename V::F;
  F acc[RB][KB];
  DEEPMLA_ATTN_UNROLL
  for (int r = 0; r < RB; ++r)
    DEEPMLA_ATTN_UNROLL
    for (int j = 0; j < KB; ++j) acc[r][j] = V::zero();
  for (int64_t d = 0; d < dq; d += V::W) {
    F kv[KB];
    DEEPMLA_ATTN_UNROLL
    for (int j = 0; j < KB; ++j) kv[j] = V::load(k + j * dk + d);
    DEEPMLA_ATTN_UNROLL
    for (int r = 0; r < RB; ++r) {
      const F qv = V::load(q + r * dq + d);
      DEEPMLA_ATTN_UNROLL
      for (int j = 0; j < KB; ++j) acc[r][j] = V::fma(qv, kv[j], acc[r][j]);
    }
  }
  DEEPMLA_ATTN_UNROLL
  for (int r = 0; r < RB; ++r)
    DEEPMLA_ATTN_UNROLL
    for (int j = 0; j < KB; ++j) s[r * kC + j] = V::hsum(acc[r][j]);
}

// Rows [0, RB) against cache rows [0, n): full tiles, then one narrower tile.
template <class V, int RB, int KB>
void score_keys_tail(int64_t rem, const float* q, int64_t dq, const float* k, int64_t dk, float* s) {
  if constexpr (KB > 0) {
    if (rem == KB) return score_tile<V, RB, KB>(q, dq, k, dk, s);
    score_keys_tail<V, RB, KB - 1>(rem, q, dq, k, dk, s);
  }
}

template <class V, int RB>
void score_rows(const float* q, int64_t dq, const float* kf, int64_t dk, int64_t n, float* s) {
  constexpr int KB = V::kScoreKeys;
  int64_t j = 0;
  for (; j + KB <= n; j += KB) score_tile<V, RB, KB>(q, dq, kf + j * dk, dk, s + j);
  if (j < n) score_keys_tail<V, RB, KB - 1>(n - j, q, dq, kf + j * dk, dk, s + j);
}

template <class V, int RB>
void score_rows_tail(int64_t rem, const float* q, int64_t dq, const float* kf, int64_t dk, int64_t n, float* s) {
  if constexpr (RB > 0) {
    if (rem == RB) return score_rows<V, RB>(q, dq, kf, dk, n, s);
    score_rows_tail<V, RB - 1>(rem, q, dq, kf, dk, n, s);
  }
}

template <class V>
void scores(const float* q, int64_t n_rows, int64_t dq, const float* kf, int64_t dk, int64_t n, float* s) {
  constexpr int RB = V::kScoreRows;
  int64_t r = 0;
  for (; r + RB <= n_rows; r += RB) score_rows<V, RB>(q + r * dq, dq, kf, dk, n, s + r * kC);
  if (r < n_rows) score_rows_tail<V, RB - 1>(n_rows - r, q + r * dq, dq, kf, dk, n, s + r * kC);
}

// acc[r] = acc[r] * f[r] + sum_j P[r][j] V[j] for RB rows, all dv channels.
template <class V, int RB>
void accumulate_rows(const float* p, const float* f, const float* kf, int64_t n, int64_t dk, int64_t dv, float* acc,
                     size_t acc_stride) {
  using F = typename V::F;
  constexpr int AV = V::kAccVecs;
  for (int64_t c = 0; c < dv; c += AV * V::W) {
    F a[RB][AV];
    DEEPMLA_ATTN_UNROLL
    for (int r = 0; r < RB; ++r) {
      const F fr = V::set1(f[r]);
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < AV; ++v) a[r][v] = V::mul(V::load(acc + r * acc_stride + c + v * V::W), fr);
    }
    for (int64_t j = 0; j < n; ++j) {
      F x[AV];
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < AV; ++v) x[v] = V::load(kf + j * dk + c + v * V::W);
      DEEPMLA_ATTN_UNROLL
      for (int r = 0; r < RB; ++r) {
        const F pr = V::set1(p[r * kC + j]);
        DEEPMLA_ATTN_UNROLL
        for (int v = 0; v < AV; ++v) a[r][v] = V::fma(pr, x[v], a[r][v]);
      }
    }
    DEEPMLA_ATTN_UNROLL
    for (int r = 0; r < RB; ++r)
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < AV; ++v) V::store(acc + r * acc_stride + c + v * V::W, a[r][v]);
  }
}

template <class V, int RB>
void accumulate_tail(int64_t rem, const float* p, const float* f, const float* kf, int64_t n, int64_t dk, int64_t dv,
                     float* acc, size_t acc_stride) {
  if constexpr (RB > 0) {
    if (rem == RB) return accumulate_rows<V, RB>(p, f, kf, n, dk, dv, acc, acc_stride);
    accumulate_tail<V, RB - 1>(rem, p, f, kf, n, dk, dv, acc, acc_stride);
  }
}

// Online softmax of one row's chunk of scores s[0, kC) (masked entries -inf): updates m
// and l, turns s into weights, returns the factor for acc.
template <class V>
float softmax_chunk(float* s, float* m, float* l) {
  using F = typename V::F;
  F mx = V::load(s);
  for (int64_t j = V::W; j < kC; j += V::W) mx = V::max(mx, V::load(s + j));
  const float m_new = std::max(*m, V::hmax(mx));
  if (m_new == -std::numeric_limits<float>::infinity()) {  // nothing visible yet
    std::fill(s, s + kC, 0.0f);
    return 1.0f;
  }
  const float f = std::exp(*m - m_new);  // 0 when m was -inf
  const F mv = V::set1(m_new);
  F sum = V::zero();
  for (int64_t j = 0; j < kC; j += V::W) {
    const F p = V::exp(V::add(V::load(s + j), V::mul(mv, V::set1(-1.0f))));
    V::store(s + j, p);
    sum = V::add(sum, p);
  }
  *l = *l * f + V::hsum(sum);
  *m = m_new;
  return f;
}

// Once a chunk's scores s[r * kC + j] (j < n) are in: mask what row r does not see and
// turn the scores into softmax weights (0 where masked); f[r] rescales row r's acc.
template <class V>
void softmax_rows(const FlashMlaArgs& a, int64_t c0, int64_t n, float* s, float* f) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < a.n_rows; ++r) {
    float* sr = s + r * kC;
    const int64_t visible = std::clamp<int64_t>(a.visible[r] - c0, 0, n);
    std::fill(sr + visible, sr + kC, kNegInf);
    f[r] = softmax_chunk<V>(sr, a.m + r, a.l + r);
  }
}

// The rest of a chunk once its scores are in: softmax_rows, then acc = acc f + P V with V
// rows v_stride floats apart.
template <class V>
void softmax_and_accumulate(const FlashMlaArgs& a, int64_t c0, int64_t n, float* s, float* f, const float* v,
                            int64_t v_stride) {
  softmax_rows<V>(a, c0, n, s, f);
  const int64_t R = a.n_rows;
  constexpr int RB = V::kFlashAccRows;
  int64_t r = 0;
  for (; r + RB <= R; r += RB)
    accumulate_rows<V, RB>(s + r * kC, f + r, v, n, v_stride, a.dv, a.acc + size_t(r) * a.acc_stride, a.acc_stride);
  if (r < R)
    accumulate_tail<V, RB - 1>(R - r, s + r * kC, f + r, v, n, v_stride, a.dv, a.acc + size_t(r) * a.acc_stride,
                               a.acc_stride);
}

template <class V, ConvertFn Convert>
void flash_mla_run(const FlashMlaArgs& a) {
  using F = typename V::F;
  const FlashMlaLayout lay = flash_mla_layout(a.dk, a.n_rows);
  float* qs = reinterpret_cast<float*>(a.scratch + lay.q);
  float* kf = reinterpret_cast<float*>(a.scratch + lay.k);
  float* s = reinterpret_cast<float*>(a.scratch + lay.s);
  float* f = reinterpret_cast<float*>(a.scratch + lay.f);
  const int64_t dk = a.dk, dq = a.dk - a.k_skip, R = a.n_rows;
  const F scale = V::set1(a.scale);
  int64_t end = a.j0;
  for (int64_t r = 0; r < R; ++r) {
    end = std::max(end, std::min(a.j1, a.visible[r]));
    for (int64_t d = 0; d < dq; d += V::W) V::store(qs + r * dq + d, V::mul(V::load(a.q[r] + d), scale));
  }
  for (int64_t c0 = a.j0; c0 < end; c0 += kC) {
    const int64_t n = std::min(kC, end - c0);
    Convert(a.k + size_t(c0) * a.k_row_bytes, a.k_row_bytes, n, dk, kf);
    scores<V>(qs, R, dq, kf + a.k_skip, dk, n, s);
    softmax_and_accumulate<V>(a, c0, n, s, f, kf, dk);
  }
}

}  // namespace
}  // namespace deepmla::kernels
