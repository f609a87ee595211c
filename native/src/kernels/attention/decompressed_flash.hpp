#pragma once
// Flash attention of one head over decompressed rows (mla 3 prompts), f32, with the query
// rows in the lanes: per call up to 64 queries against a chunk of keys, 32 keys a step,
// written once over a float vector type V (simd_avx2.hpp, simd_avx512.hpp).
//
// flash_mla.hpp's loop over [v ; k_nope ; k_pe] rows puts dims in the lanes, so every
// score ends in a horizontal sum; with 192 dims that is one sum per 12 FMAs, and it ran
// at ~2/3 of the FMA peak. Here:
//   scores: lane r of acc[g][j] += q'[r][i] * k[j][i], q' = q * scale transposed once per
//     call, k[j][i] broadcast from the row where kv_b's output left it; no lane sums, and
//     the online softmax runs on rows in lanes too (max and sum are lane-wise);
//   P V: lane c of acc[r] += P[r][j] v[j][c], P[r][j] broadcast, v read in place.
// The same f32 arithmetic as flash_mla.hpp's, summed in another order; P V is a policy
// (decompressed_flash_avx512bf16.cpp has a bf16 one).
// Layout: layout.hpp's DecompressedFlashScratch. Internal linkage: see
// kernels/matmul/tiling.hpp.
#include <algorithm>
#include <limits>

#include "deepmla/kernels.hpp"
#include "kernels/attention/flash_mla.hpp"  // DEEPMLA_ATTN_UNROLL
#include "kernels/attention/layout.hpp"

namespace deepmla::kernels {

namespace {

constexpr int64_t kDfKeys = kDecompressedFlashKeys;
constexpr int64_t kDfRows = kDecompressedFlashRows;
// A score tile: kDfTileKeys keys x up to V::kDfTileGroups groups of W rows.
constexpr int kDfTileKeys = 4;
static_assert(kDfKeys % kDfTileKeys == 0, "score tiles cover a step");

// qt[i * 64 + r] = q[r][i] * scale; rows past n_rows (to the group's end) are zeros. A
// call stages its queries again for every chunk of keys, W x W blocks through registers
// (V::transpose_scaled): row by row, the stores 256 bytes apart over a 48 KiB qt missed
// L1 and took 5% of a prompt's time at 4096 cached tokens (Zen4), 15-20% of this
// kernel's (Zen3).
template <class V>
void df_stage_queries(const DecompressedFlashArgs& a, int64_t padded_rows, float* qt) {
  const int64_t dq = a.nope + a.rope;
  for (int64_t r0 = 0; r0 < padded_rows; r0 += V::W) {
    const float* rows[V::W];
    for (int r = 0; r < V::W; ++r) rows[r] = r0 + r < a.n_rows ? a.q[r0 + r] : nullptr;
    for (int64_t i0 = 0; i0 < dq; i0 += V::W) V::transpose_scaled(rows, i0, a.scale, qt + i0 * kDfRows + r0, kDfRows);
  }
}

// s[j * 64 + r] for keys [c, c + n) of the chunk and the G groups of W rows from row r0,
// in tiles of kDfTileKeys keys (keys past n read the zero row).
template <class V, int G>
void df_score_keys(const DecompressedFlashArgs& a, const float* qt, int64_t r0, int64_t c, int64_t n,
                   const float* zero, float* s) {
  using F = typename V::F;
  constexpr int K = kDfTileKeys;
  for (int64_t j = 0; j < n; j += K) {
    const float* kn[K];
    const float* kp[K];
    DEEPMLA_ATTN_UNROLL
    for (int jj = 0; jj < K; ++jj) {
      const bool in = j + jj < n;
      kn[jj] = in ? a.kv + size_t(c + j + jj) * a.kv_stride : zero;
      kp[jj] = in ? a.k_pe + (c + j + jj) * a.rope : zero;
    }
    F acc[G][K];
    DEEPMLA_ATTN_UNROLL
    for (int g = 0; g < G; ++g)
      DEEPMLA_ATTN_UNROLL
      for (int jj = 0; jj < K; ++jj) acc[g][jj] = V::zero();
    for (int part = 0; part < 2; ++part) {  // k_nope, then k_pe
      const float* const* k = part == 0 ? kn : kp;
      const float* q = (part == 0 ? qt : qt + a.nope * kDfRows) + r0;
      const int64_t count = part == 0 ? a.nope : a.rope;
      for (int64_t i = 0; i < count; ++i) {
        F qv[G];
        DEEPMLA_ATTN_UNROLL
        for (int g = 0; g < G; ++g) qv[g] = V::load(q + i * kDfRows + g * V::W);
        DEEPMLA_ATTN_UNROLL
        for (int jj = 0; jj < K; ++jj) {
          const F kb = V::set1(k[jj][i]);
          DEEPMLA_ATTN_UNROLL
          for (int g = 0; g < G; ++g) acc[g][jj] = V::fma(qv[g], kb, acc[g][jj]);
        }
      }
    }
    DEEPMLA_ATTN_UNROLL
    for (int jj = 0; jj < K; ++jj)
      DEEPMLA_ATTN_UNROLL
      for (int g = 0; g < G; ++g) V::store(s + (j + jj) * kDfRows + r0 + g * V::W, acc[g][jj]);
  }
}

// Masks the scores of keys [c, c + n) of the W rows from r0 by what each row sees, turns
// them into softmax weights against the updated maxima (0 where masked), updates m and l;
// f[r] is the factor of row r's acc. Lanes past n_rows compute on zeros and are not stored.
template <class V>
void df_softmax_group(const DecompressedFlashArgs& a, int64_t r0, int64_t c, int64_t n, const int32_t* vis, float* s,
                      float* f) {
  using F = typename V::F;
  const F neg_inf = V::set1(-std::numeric_limits<float>::infinity());
  const int64_t live = std::min<int64_t>(V::W, a.n_rows - r0);
  float* sg = s + r0;
  F mx = neg_inf;
  for (int64_t j = 0; j < n; ++j) {
    const F x = V::keep_where_greater(V::load(sg + j * kDfRows), vis + r0, int32_t(c + j), neg_inf);
    V::store(sg + j * kDfRows, x);
    mx = V::max(mx, x);
  }
  const F m_old = live == V::W ? V::load(a.m + r0) : V::load_n(a.m + r0, live);
  const F m_new = V::max(m_old, mx);
  // Rows that have seen nothing yet keep m = -inf; they subtract 0 so that e^(-inf) = 0.
  const F m_use = V::replace_neg_inf(m_new, V::zero());
  const F factor = V::exp(V::add(m_old, V::neg(m_use)));
  F sum = V::zero();
  for (int64_t j = 0; j < n; ++j) {
    const F p = V::exp(V::add(V::load(sg + j * kDfRows), V::neg(m_use)));
    V::store(sg + j * kDfRows, p);
    sum = V::add(sum, p);
  }
  const F l_old = live == V::W ? V::load(a.l + r0) : V::load_n(a.l + r0, live);
  const F l_new = V::fma(l_old, factor, sum);
  if (live == V::W) {
    V::store(a.l + r0, l_new);
    V::store(a.m + r0, m_new);
  } else {
    V::store_n(a.l + r0, l_new, live);
    V::store_n(a.m + r0, m_new, live);
  }
  V::store(f + r0, factor);
}

// acc[r] = acc[r] f[r] + sum_j P[r][j] v[j] for RB rows from r; keys [c, c + n); tiles
// of V::kAccVecs registers of channels.
template <class V, int RB>
void df_accumulate_rows(const DecompressedFlashArgs& a, const float* s, const float* f, int64_t c, int64_t n,
                        int64_t r) {
  using F = typename V::F;
  constexpr int AV = V::kAccVecs;
  for (int64_t cb = 0; cb < a.dv; cb += V::W * AV) {
    F acc[RB][AV];
    DEEPMLA_ATTN_UNROLL
    for (int rr = 0; rr < RB; ++rr) {
      const F fr = V::set1(f[r + rr]);
      const float* ar = a.acc + size_t(r + rr) * a.acc_stride + cb;
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < AV; ++v) acc[rr][v] = V::mul(V::load(ar + V::W * v), fr);
    }
    for (int64_t j = 0; j < n; ++j) {
      const float* vj = a.kv + size_t(c + j) * a.kv_stride + a.nope + cb;
      F vv[AV];
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < AV; ++v) vv[v] = V::load(vj + V::W * v);
      DEEPMLA_ATTN_UNROLL
      for (int rr = 0; rr < RB; ++rr) {
        const F p = V::set1(s[j * kDfRows + r + rr]);
        DEEPMLA_ATTN_UNROLL
        for (int v = 0; v < AV; ++v) acc[rr][v] = V::fma(p, vv[v], acc[rr][v]);
      }
    }
    DEEPMLA_ATTN_UNROLL
    for (int rr = 0; rr < RB; ++rr) {
      float* ar = a.acc + size_t(r + rr) * a.acc_stride + cb;
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < AV; ++v) V::store(ar + V::W * v, acc[rr][v]);
    }
  }
}

template <class V, int RB>
void df_accumulate_tail(int64_t rem, const DecompressedFlashArgs& a, const float* s, const float* f, int64_t c,
                        int64_t n, int64_t r) {
  if constexpr (RB > 0) {
    if (rem == RB) return df_accumulate_rows<V, RB>(a, s, f, c, n, r);
    df_accumulate_tail<V, RB - 1>(rem, a, s, f, c, n, r);
  }
}

template <class V, int G>
void df_score_groups(int64_t rem, const DecompressedFlashArgs& a, const float* qt, int64_t r0, int64_t c, int64_t n,
                     const float* zero, float* s) {
  if constexpr (G > 0) {
    if (rem == G) return df_score_keys<V, G>(a, qt, r0, c, n, zero, s);
    df_score_groups<V, G - 1>(rem, a, qt, r0, c, n, zero, s);
  }
}

// The P V policy of the f32 variants: df_accumulate_rows over the chunk's keys.
template <class V>
struct DfFloatValues {
  static void accumulate(const DecompressedFlashArgs& a, const DecompressedFlashScratch&, const float* s,
                         const float* f, int64_t c, int64_t n) {
    constexpr int RB = V::kAccRows;
    int64_t r = 0;
    for (; r + RB <= a.n_rows; r += RB) df_accumulate_rows<V, RB>(a, s, f, c, n, r);
    if (r < a.n_rows) df_accumulate_tail<V, RB - 1>(a.n_rows - r, a, s, f, c, n, r);
  }
};

template <class V, class Values = DfFloatValues<V>>
void decompressed_flash_run(const DecompressedFlashArgs& a) {
  constexpr int GT = V::kDfTileGroups;
  const int64_t dq = a.nope + a.rope, R = a.n_rows;
  if (R <= 0 || R > kDfRows) return;
  const int64_t groups = (R + V::W - 1) / V::W;
  const DecompressedFlashScratch lay = decompressed_flash_scratch(dq, a.dv);
  float* qt = reinterpret_cast<float*>(a.scratch + lay.qt);
  float* s = reinterpret_cast<float*>(a.scratch + lay.s);
  int32_t* vis = reinterpret_cast<int32_t*>(a.scratch + lay.vis);
  float* f = reinterpret_cast<float*>(a.scratch + lay.f);
  float* zero = reinterpret_cast<float*>(a.scratch + lay.zero);
  int64_t end = 0;
  for (int64_t r = 0; r < kDfRows; ++r) {
    vis[r] = r < R ? int32_t(std::clamp<int64_t>(a.visible[r], 0, a.n_keys)) : 0;
    end = std::max<int64_t>(end, vis[r]);
  }
  if (end == 0) return;
  std::fill(zero, zero + dq, 0.0f);
  df_stage_queries<V>(a, groups * V::W, qt);
  for (int64_t c = 0; c < end; c += kDfKeys) {
    const int64_t n = std::min(kDfKeys, end - c);
    for (int64_t g = 0; g < groups; g += GT)
      df_score_groups<V, GT>(std::min<int64_t>(GT, groups - g), a, qt, g * V::W, c, n, zero, s);
    for (int64_t g = 0; g < groups; ++g) df_softmax_group<V>(a, g * V::W, c, n, vis, s, f);
    Values::accumulate(a, lay, s, f, c, n);
  }
}

}  // namespace
}  // namespace deepmla::kernels
