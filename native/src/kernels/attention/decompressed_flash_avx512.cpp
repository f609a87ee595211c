// Flash attention of one head over decompressed rows (mla 3 prompts), AVX512 f32, with
// the query rows in the lanes: per call up to 64 queries against a chunk of keys, 32 keys
// a step.
//
// flash_mla.hpp's loop over [v ; k_nope ; k_pe] rows puts dims in the lanes, so every
// score ends in a horizontal sum; with 192 dims that is one sum per 12 FMAs, and it ran
// at ~2/3 of the FMA peak. Here:
//   scores: lane r of acc[g][j] += q'[r][i] * k[j][i], q' = q * scale transposed once per
//     call, k[j][i] broadcast from the row where kv_b's output left it; no lane sums, and
//     the online softmax runs on rows in lanes too (max and sum are lane-wise);
//   P V: lane c of acc[r] += P[r][j] v[j][c], P[r][j] broadcast, v read in place.
// The same f32 arithmetic as flash_mla.hpp's, summed in another order.
// Layout: layout.hpp's DecompressedFlashScratch.
#include <algorithm>
#include <cstring>
#include <limits>

#include "deepmla/kernels.hpp"
#include "kernels/attention/flash_mla.hpp"  // DEEPMLA_ATTN_UNROLL
#include "kernels/attention/layout.hpp"
#include "kernels/attention/simd_avx512.hpp"

namespace deepmla::kernels {

namespace {

constexpr int64_t kKeys = kDecompressedFlashKeys;
constexpr int64_t kRows = kDecompressedFlashRows;
constexpr int kScoreKeys = 4;  // keys per score tile: 4 x up to 4 groups of 16 rows
constexpr int kAccRows = 4;    // P V tile: 4 rows x 4 registers of channels
constexpr int kAccVecs = 4;
static_assert(kKeys % kScoreKeys == 0, "score tiles cover a step");

// qt[i * 64 + r] = q[r][i] * scale; rows past n_rows are zeros.
void stage_queries(const DecompressedFlashArgs& a, int64_t groups, float* qt) {
  const int64_t dq = a.nope + a.rope;
  for (int64_t r = 0; r < groups * 16; ++r) {
    const float* q = r < a.n_rows ? a.q[r] : nullptr;
    for (int64_t i = 0; i < dq; ++i) qt[i * kRows + r] = q ? q[i] * a.scale : 0.0f;
  }
}

// s[j * 64 + r] for keys [c, c + n) of the chunk, in tiles of kScoreKeys (keys past n read
// the zero row), G groups of 16 rows.
template <int G>
void score_keys(const DecompressedFlashArgs& a, const float* qt, int64_t c, int64_t n, const float* zero, float* s) {
  for (int64_t j = 0; j < n; j += kScoreKeys) {
    const float* kn[kScoreKeys];
    const float* kp[kScoreKeys];
    DEEPMLA_ATTN_UNROLL
    for (int jj = 0; jj < kScoreKeys; ++jj) {
      const bool in = j + jj < n;
      kn[jj] = in ? a.kv + size_t(c + j + jj) * a.kv_stride : zero;
      kp[jj] = in ? a.k_pe + (c + j + jj) * a.rope : zero;
    }
    __m512 acc[G][kScoreKeys];
    DEEPMLA_ATTN_UNROLL
    for (int g = 0; g < G; ++g)
      DEEPMLA_ATTN_UNROLL
      for (int jj = 0; jj < kScoreKeys; ++jj) acc[g][jj] = _mm512_setzero_ps();
    for (int part = 0; part < 2; ++part) {  // k_nope, then k_pe
      const float* const* k = part == 0 ? kn : kp;
      const float* q = part == 0 ? qt : qt + a.nope * kRows;
      const int64_t count = part == 0 ? a.nope : a.rope;
      for (int64_t i = 0; i < count; ++i) {
        __m512 qv[G];
        DEEPMLA_ATTN_UNROLL
        for (int g = 0; g < G; ++g) qv[g] = _mm512_load_ps(q + i * kRows + g * 16);
        DEEPMLA_ATTN_UNROLL
        for (int jj = 0; jj < kScoreKeys; ++jj) {
          const __m512 kb = _mm512_set1_ps(k[jj][i]);
          DEEPMLA_ATTN_UNROLL
          for (int g = 0; g < G; ++g) acc[g][jj] = _mm512_fmadd_ps(qv[g], kb, acc[g][jj]);
        }
      }
    }
    DEEPMLA_ATTN_UNROLL
    for (int jj = 0; jj < kScoreKeys; ++jj)
      DEEPMLA_ATTN_UNROLL
      for (int g = 0; g < G; ++g) _mm512_store_ps(s + (j + jj) * kRows + g * 16, acc[g][jj]);
  }
}

// Masks group g's scores of keys [c, c + n) by what each row sees, turns them into
// softmax weights against the updated maxima (0 where masked), updates m and l; f[r] is
// the factor of row r's acc.
void softmax_group(const DecompressedFlashArgs& a, int64_t g, int64_t c, int64_t n, const int32_t* vis, float* s,
                   float* f) {
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t live = std::min<int64_t>(16, a.n_rows - g * 16);
  const __mmask16 rows = __mmask16((1u << live) - 1);
  const __m512i seen = _mm512_load_si512(reinterpret_cast<const void*>(vis + g * 16));
  float* sg = s + g * 16;
  __m512 mx = neg_inf;
  for (int64_t j = 0; j < n; ++j) {
    const __mmask16 keep = _mm512_cmpgt_epi32_mask(seen, _mm512_set1_epi32(int32_t(c + j)));
    const __m512 x = _mm512_mask_mov_ps(neg_inf, keep, _mm512_load_ps(sg + j * kRows));
    _mm512_store_ps(sg + j * kRows, x);
    mx = _mm512_max_ps(mx, x);
  }
  const __m512 m_old = _mm512_mask_loadu_ps(neg_inf, rows, a.m + g * 16);
  const __m512 m_new = _mm512_max_ps(m_old, mx);
  // Rows that have seen nothing yet keep m = -inf; they subtract 0 so that e^(-inf) = 0.
  const __m512 m_use = _mm512_mask_mov_ps(m_new, _mm512_cmp_ps_mask(m_new, neg_inf, _CMP_EQ_OQ), _mm512_setzero_ps());
  const __m512 factor = Avx512::exp(_mm512_sub_ps(m_old, m_use));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const __m512 p = Avx512::exp(_mm512_sub_ps(_mm512_load_ps(sg + j * kRows), m_use));
    _mm512_store_ps(sg + j * kRows, p);
    sum = _mm512_add_ps(sum, p);
  }
  const __m512 l_old = _mm512_maskz_loadu_ps(rows, a.l + g * 16);
  _mm512_mask_storeu_ps(a.l + g * 16, rows, _mm512_fmadd_ps(l_old, factor, sum));
  _mm512_mask_storeu_ps(a.m + g * 16, rows, m_new);
  _mm512_store_ps(f + g * 16, factor);
}

// acc[r] = acc[r] f[r] + sum_j P[r][j] v[j] for RB rows from r; keys [c, c + n).
template <int RB>
void accumulate_rows(const DecompressedFlashArgs& a, const float* s, const float* f, int64_t c, int64_t n, int64_t r) {
  constexpr int V = kAccVecs;
  for (int64_t cb = 0; cb < a.dv; cb += 16 * V) {
    __m512 acc[RB][V];
    DEEPMLA_ATTN_UNROLL
    for (int rr = 0; rr < RB; ++rr) {
      const __m512 fr = _mm512_set1_ps(f[r + rr]);
      const float* ar = a.acc + size_t(r + rr) * a.acc_stride + cb;
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < V; ++v) acc[rr][v] = _mm512_mul_ps(_mm512_loadu_ps(ar + 16 * v), fr);
    }
    for (int64_t j = 0; j < n; ++j) {
      const float* vj = a.kv + size_t(c + j) * a.kv_stride + a.nope + cb;
      __m512 vv[V];
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < V; ++v) vv[v] = _mm512_loadu_ps(vj + 16 * v);
      DEEPMLA_ATTN_UNROLL
      for (int rr = 0; rr < RB; ++rr) {
        const __m512 p = _mm512_set1_ps(s[j * kRows + r + rr]);
        DEEPMLA_ATTN_UNROLL
        for (int v = 0; v < V; ++v) acc[rr][v] = _mm512_fmadd_ps(p, vv[v], acc[rr][v]);
      }
    }
    DEEPMLA_ATTN_UNROLL
    for (int rr = 0; rr < RB; ++rr) {
      float* ar = a.acc + size_t(r + rr) * a.acc_stride + cb;
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(ar + 16 * v, acc[rr][v]);
    }
  }
}

template <int RB>
void accumulate_tail(int64_t rem, const DecompressedFlashArgs& a, const float* s, const float* f, int64_t c, int64_t n,
                     int64_t r) {
  if constexpr (RB > 0) {
    if (rem == RB) return accumulate_rows<RB>(a, s, f, c, n, r);
    accumulate_tail<RB - 1>(rem, a, s, f, c, n, r);
  }
}

}  // namespace

void decompressed_flash_avx512(const DecompressedFlashArgs& a) {
  const int64_t dq = a.nope + a.rope, R = a.n_rows;
  if (R <= 0 || R > kRows) return;
  const int64_t groups = (R + 15) / 16;
  const DecompressedFlashScratch lay = decompressed_flash_scratch(dq);
  float* qt = reinterpret_cast<float*>(a.scratch + lay.qt);
  float* s = reinterpret_cast<float*>(a.scratch + lay.s);
  int32_t* vis = reinterpret_cast<int32_t*>(a.scratch + lay.vis);
  float* f = reinterpret_cast<float*>(a.scratch + lay.f);
  float* zero = reinterpret_cast<float*>(a.scratch + lay.zero);
  int64_t end = 0;
  for (int64_t r = 0; r < kRows; ++r) {
    vis[r] = r < R ? int32_t(std::clamp<int64_t>(a.visible[r], 0, a.n_keys)) : 0;
    end = std::max<int64_t>(end, vis[r]);
  }
  if (end == 0) return;
  std::fill(zero, zero + dq, 0.0f);
  stage_queries(a, groups, qt);
  for (int64_t c = 0; c < end; c += kKeys) {
    const int64_t n = std::min(kKeys, end - c);
    switch (groups) {
      case 1: score_keys<1>(a, qt, c, n, zero, s); break;
      case 2: score_keys<2>(a, qt, c, n, zero, s); break;
      case 3: score_keys<3>(a, qt, c, n, zero, s); break;
      default: score_keys<4>(a, qt, c, n, zero, s); break;
    }
    for (int64_t g = 0; g < groups; ++g) softmax_group(a, g, c, n, vis, s, f);
    int64_t r = 0;
    for (; r + kAccRows <= R; r += kAccRows) accumulate_rows<kAccRows>(a, s, f, c, n, r);
    if (r < R) accumulate_tail<kAccRows - 1>(R - r, a, s, f, c, n, r);
  }
}

}  // namespace deepmla::kernels
