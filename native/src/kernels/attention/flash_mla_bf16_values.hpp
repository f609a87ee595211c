#pragma once
// P V of the int8-cache flash MLA (flash_mla_vnni.hpp) in bf16 dot products, for CPUs with
// AVX512-BF16: vdpbf16ps does 32 multiply-adds per instruction against an f32 FMA's 16, and
// P V is most of a generated token's attention at long context (16 heads x n_kv x 512
// multiply-adds per layer, as many as the scores, which are already int8).
//
// The quants stay exact: an int8 cache value is an integer of magnitude <= 127, which bf16
// holds exactly. What is rounded is the weight of a (row, key, channel block): the softmax
// weight P times the block's scale d, to bf16 (nearest even, 8 significant bits), so each
// product carries a relative error of at most 2^-8 and an output channel an error of at
// most 2^-8 sum_j P_j |v_j| / sum_j P_j, at most 2^-8 of the largest cached value
// (test_attention.cpp holds these variants to that bound on top of the float variants'
// 1e-4). A Q8_0 cache value itself is within 2^-8 of its block's largest: the rounding is
// of the cache's own order, its rms a fraction of the cache's.
//
// Per chunk of kFlashMlaChunk (= 32) cache rows:
//   vt: rows (2p, 2p + 1) as bf16 pairs, channel c of pair p in dword c (vdpbf16ps's pairs);
//   vd[cb * 32 + j]: row j's scale for channel block cb (0 for rows past the chunk's end);
//   per 8 query rows and channel block: w = bf16(P * d) as 16 pairs, broadcast per pair
//   against the pair's 2 registers of 16 channels.
// Internal linkage: see kernels/matmul/tiling.hpp.

#include "kernels/attention/flash_mla.hpp"
#include "kernels/attention/simd_avx512.hpp"
#include "kernels/bf16_util.hpp"

namespace deepmla::kernels {
namespace {

static_assert(kFlashMlaChunk == 32, "a chunk's weights for one channel block are one register of 32 bf16");

// 16 int8 quants as floats.
inline __m512 quants_ps(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }

// bf16_pairs of floats that hold small integers (|v| < 256): their bf16 is exactly the
// f32's upper half, so a shift and a blend replace the rounding conversion and the word
// permute (the staging of a chunk's values was a quarter of the AMX kernel's time).
inline __m512i integer_bf16_pairs(__m512 lo, __m512 hi) {
  const __m512i l = _mm512_srli_epi32(_mm512_castps_si512(lo), 16);
  return _mm512_mask_blend_epi16(__mmask32(0xaaaaaaaa), l, _mm512_castps_si512(hi));
}

// The chunk's first dv values of rows [0, n) as bf16 pairs (vt) and their block scales
// transposed (vd); rows [n, kC) are zeros with scale 0.
template <class Cache>
void stage_values_bf16(const uint8_t* k, size_t k_row_bytes, int64_t n, int64_t dv, uint16_t* vt, float* vd) {
  const int64_t nbv = dv / 32;
  for (int64_t p = 0; p < kC / 2; ++p) {
    const int64_t j0 = 2 * p, j1 = 2 * p + 1;
    const uint8_t* r0 = k + size_t(j0) * k_row_bytes;
    const uint8_t* r1 = k + size_t(j1) * k_row_bytes;
    uint16_t* out = vt + p * dv * 2;
    for (int64_t cb = 0; cb < nbv; ++cb) {
      __m256i q0 = _mm256_setzero_si256(), q1 = _mm256_setzero_si256();
      if (j0 < n) q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Cache::quants(r0, cb)));
      if (j1 < n) q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Cache::quants(r1, cb)));
      // Channels 0-15 and 16-31 of rows 2p, 2p + 1 as pairs.
      _mm512_storeu_si512(reinterpret_cast<void*>(out + cb * 64),
                          integer_bf16_pairs(quants_ps(_mm256_castsi256_si128(q0)), quants_ps(_mm256_castsi256_si128(q1))));
      _mm512_storeu_si512(reinterpret_cast<void*>(out + cb * 64 + 32),
                          integer_bf16_pairs(quants_ps(_mm256_extracti128_si256(q0, 1)), quants_ps(_mm256_extracti128_si256(q1, 1))));
    }
  }
  for (int64_t cb = 0; cb < nbv; ++cb)
    for (int64_t j = 0; j < kC; ++j) vd[cb * kC + j] = j < n ? Cache::scale(k + size_t(j) * k_row_bytes, cb) : 0.0f;
}

// acc[r] = acc[r] * f[r] + sum_j bf16(P[r][j] d[j]) v[j] for RB rows, all dv channels;
// `pairs` pairs of cache rows hold the chunk's rows.
template <int RB>
void accumulate_rows_bf16(const float* p, const float* f, const uint16_t* vt, const float* vd, int64_t pairs,
                          int64_t dv, float* acc, size_t acc_stride) {
  const int64_t nbv = dv / 32;
  for (int64_t cb = 0; cb < nbv; ++cb) {
    alignas(64) uint32_t w[RB][16];
    const __m512 d0 = _mm512_loadu_ps(vd + cb * kC), d1 = _mm512_loadu_ps(vd + cb * kC + 16);
    __m512 a[RB][2];
    DEEPMLA_ATTN_UNROLL
    for (int r = 0; r < RB; ++r) {
      const float* pr = p + r * kC;
      const __m512bh wr =
          _mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_loadu_ps(pr + 16), d1), _mm512_mul_ps(_mm512_loadu_ps(pr), d0));
      _mm512_store_si512(reinterpret_cast<void*>(w[r]), bf16_as_int(wr));
      const __m512 fr = _mm512_set1_ps(f[r]);
      float* ar = acc + r * acc_stride + cb * 32;
      a[r][0] = _mm512_mul_ps(_mm512_loadu_ps(ar), fr);
      a[r][1] = _mm512_mul_ps(_mm512_loadu_ps(ar + 16), fr);
    }
    for (int64_t q = 0; q < pairs; ++q) {
      const uint16_t* v = vt + q * dv * 2 + cb * 64;
      const __m512bh v0 = bf16_bits(_mm512_loadu_si512(reinterpret_cast<const void*>(v)));
      const __m512bh v1 = bf16_bits(_mm512_loadu_si512(reinterpret_cast<const void*>(v + 32)));
      DEEPMLA_ATTN_UNROLL
      for (int r = 0; r < RB; ++r) {
        const __m512bh wq = bf16_bits(_mm512_set1_epi32(int32_t(w[r][q])));
        a[r][0] = _mm512_dpbf16_ps(a[r][0], wq, v0);
        a[r][1] = _mm512_dpbf16_ps(a[r][1], wq, v1);
      }
    }
    DEEPMLA_ATTN_UNROLL
    for (int r = 0; r < RB; ++r) {
      float* ar = acc + r * acc_stride + cb * 32;
      _mm512_storeu_ps(ar, a[r][0]);
      _mm512_storeu_ps(ar + 16, a[r][1]);
    }
  }
}

template <int RB>
void accumulate_tail_bf16(int64_t rem, const float* p, const float* f, const uint16_t* vt, const float* vd,
                          int64_t pairs, int64_t dv, float* acc, size_t acc_stride) {
  if constexpr (RB > 0) {
    if (rem == RB) return accumulate_rows_bf16<RB>(p, f, vt, vd, pairs, dv, acc, acc_stride);
    accumulate_tail_bf16<RB - 1>(rem, p, f, vt, vd, pairs, dv, acc, acc_stride);
  }
}

// flash_mla_vnni.hpp's value policy: V staged as bf16 pairs, P V by vdpbf16ps.
template <class Cache>
struct Bf16Values {
  static constexpr int kRows = 8;  // 8 rows x 2 registers = 16 accumulators
  static void begin(const FlashMlaArgs&, uint8_t*) {}
  static void finish(const FlashMlaArgs&, uint8_t*) {}
  static void stage(const FlashMlaArgs& a, const uint8_t* rows, int64_t n, uint8_t* region) {
    stage_values_bf16<Cache>(rows, a.k_row_bytes, n, a.dv, vt_of(region), vd_of(a, region));
  }
  static void accumulate(const FlashMlaArgs& a, int64_t c0, int64_t n, float* s, float* f, uint8_t* region) {
    softmax_rows<Avx512>(a, c0, n, s, f);
    const int64_t pairs = (n + 1) / 2, R = a.n_rows;
    const uint16_t* vt = vt_of(region);
    const float* vd = vd_of(a, region);
    int64_t r = 0;
    for (; r + kRows <= R; r += kRows)
      accumulate_rows_bf16<kRows>(s + r * kC, f + r, vt, vd, pairs, a.dv, a.acc + size_t(r) * a.acc_stride,
                                  a.acc_stride);
    if (r < R)
      accumulate_tail_bf16<kRows - 1>(R - r, s + r * kC, f + r, vt, vd, pairs, a.dv,
                                      a.acc + size_t(r) * a.acc_stride, a.acc_stride);
  }
  // The layout's k region ([kC][dk] f32, unused here) holds vt ([kC][dv] bf16), then vd.
  static uint16_t* vt_of(uint8_t* region) { return reinterpret_cast<uint16_t*>(region); }
  static float* vd_of(const FlashMlaArgs& a, uint8_t* region) {
    return reinterpret_cast<float*>(region + size_t(kC * a.dv) * 2);
  }
};

}  // namespace
}  // namespace deepmla::kernels
