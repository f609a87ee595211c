// The decompressed flash (decompressed_flash.hpp) with P V in bf16 dot products, for CPUs
// with AVX512-BF16 and a quantized K cache: vdpbf16ps does 32 multiply-adds per
// instruction against an f32 FMA's 16, and P V is 128 of the 320 multiply-adds per
// (query, key, head) of a prompt's attention at depth.
//
// What is rounded, to bf16 (nearest even, 8 significant bits): the decompressed values
// and the softmax weights P (in [0, 1]; l sums them unrounded), so each product carries a
// relative error of at most 2^-8 and an output an error of at most 2^-8 of the largest
// value (test_attention.cpp). The scores stay f32 (decompressed_flash.hpp's tiles): with
// q and k in bf16 too, a score moved by up to 2^-8 of sum |q k|, which flipped a routing
// choice of v3-grouped's fixture and cascaded over the rows after it (median KL 8x its
// Q8_0 bound), while bf16 values stayed at the f32 kernel's error. A quantized cache's c
// already carries a larger error than bf16's (a Q8_0 value is within 2^-8 of its block's
// largest), so the op takes this variant only for Q8_0, Q8_KV and Q6_0 caches; F16, BF16
// and F32 caches keep the f32 kernel (kernels.hpp, decompressed_flash_kernel).
//
// Per step of kDfKeys keys (layout.hpp, DecompressedFlashScratch):
//   vt: dword c of pair t = (v[2t][c], v[2t + 1][c]);
//   pw: dword r of pair t = (P[r][2t], P[r][2t + 1]), rows in lanes;
//   lane c of acc[r] += pw[t][r] broadcast . vt[t].
#include <algorithm>

#include "kernels/attention/decompressed_flash.hpp"
#include "kernels/attention/simd_avx512.hpp"
#include "kernels/bf16_util.hpp"

namespace deepmla::kernels {

namespace {

// P V tile: kBfRows rows x kBfVecs vectors of 16 channels = 16 accumulators.
constexpr int kBfRows = 4, kBfVecs = 4;
static_assert(kDfKeys % 2 == 0, "key pairs cover a step");

// vt[t * dv + c] = (v[2t][c], v[2t + 1][c]) for keys [c0, c0 + n); a key past n is 0.
void stage_values(const DecompressedFlashArgs& a, int64_t c0, int64_t n, uint32_t* vt) {
  const int64_t pairs = (n + 1) / 2;
  for (int64_t t = 0; t < pairs; ++t) {
    const float* v0 = a.kv + size_t(c0 + 2 * t) * a.kv_stride + a.nope;
    const float* v1 = 2 * t + 1 < n ? v0 + a.kv_stride : nullptr;
    for (int64_t ch = 0; ch < a.dv; ch += 16) {
      const __m512 hi = v1 ? _mm512_loadu_ps(v1 + ch) : _mm512_setzero_ps();
      _mm512_store_si512(reinterpret_cast<void*>(vt + t * a.dv + ch), bf16_pairs(_mm512_loadu_ps(v0 + ch), hi));
    }
  }
}

// pw[t * 64 + r] = (P[r][2t], P[r][2t + 1]) for the groups' rows; a key past n is 0.
void stage_weights(const float* s, int64_t n, int64_t groups, uint32_t* pw) {
  const int64_t pairs = (n + 1) / 2;
  for (int64_t t = 0; t < pairs; ++t)
    for (int64_t g = 0; g < groups; ++g) {
      const __m512 lo = _mm512_loadu_ps(s + 2 * t * kDfRows + g * 16);
      const __m512 hi = 2 * t + 1 < n ? _mm512_loadu_ps(s + (2 * t + 1) * kDfRows + g * 16) : _mm512_setzero_ps();
      _mm512_store_si512(reinterpret_cast<void*>(pw + t * kDfRows + g * 16), bf16_pairs(lo, hi));
    }
}

// acc[r] = acc[r] f[r] + sum_t pw[t][r] . vt[t] for RB rows from r; `pairs` key pairs.
template <int RB>
void accumulate_rows(const DecompressedFlashArgs& a, const uint32_t* pw, const uint32_t* vt, const float* f,
                     int64_t pairs, int64_t r) {
  constexpr int AV = kBfVecs;
  for (int64_t cb = 0; cb < a.dv; cb += 16 * AV) {
    __m512 acc[RB][AV];
    DEEPMLA_ATTN_UNROLL
    for (int rr = 0; rr < RB; ++rr) {
      const __m512 fr = _mm512_set1_ps(f[r + rr]);
      const float* ar = a.acc + size_t(r + rr) * a.acc_stride + cb;
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < AV; ++v) acc[rr][v] = _mm512_mul_ps(_mm512_loadu_ps(ar + 16 * v), fr);
    }
    for (int64_t t = 0; t < pairs; ++t) {
      __m512bh vv[AV];
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < AV; ++v) vv[v] = bf16_bits(_mm512_load_si512(reinterpret_cast<const void*>(vt + t * a.dv + cb + 16 * v)));
      DEEPMLA_ATTN_UNROLL
      for (int rr = 0; rr < RB; ++rr) {
        const __m512bh w = bf16_bits(_mm512_set1_epi32(int32_t(pw[t * kDfRows + r + rr])));
        DEEPMLA_ATTN_UNROLL
        for (int v = 0; v < AV; ++v) acc[rr][v] = _mm512_dpbf16_ps(acc[rr][v], w, vv[v]);
      }
    }
    DEEPMLA_ATTN_UNROLL
    for (int rr = 0; rr < RB; ++rr) {
      float* ar = a.acc + size_t(r + rr) * a.acc_stride + cb;
      DEEPMLA_ATTN_UNROLL
      for (int v = 0; v < AV; ++v) _mm512_storeu_ps(ar + 16 * v, acc[rr][v]);
    }
  }
}

template <int RB>
void accumulate_tail(int64_t rem, const DecompressedFlashArgs& a, const uint32_t* pw, const uint32_t* vt,
                     const float* f, int64_t pairs, int64_t r) {
  if constexpr (RB > 0) {
    if (rem == RB) return accumulate_rows<RB>(a, pw, vt, f, pairs, r);
    accumulate_tail<RB - 1>(rem, a, pw, vt, f, pairs, r);
  }
}

// decompressed_flash_run's P V policy: the step's values and weights as bf16 pairs, then
// vdpbf16ps tiles.
struct Bf16Values {
  static void accumulate(const DecompressedFlashArgs& a, const DecompressedFlashScratch& lay, const float* s,
                         const float* f, int64_t c, int64_t n) {
    uint32_t* vt = reinterpret_cast<uint32_t*>(a.scratch + lay.vt);
    uint32_t* pw = reinterpret_cast<uint32_t*>(a.scratch + lay.pw);
    const int64_t pairs = (n + 1) / 2, R = a.n_rows;
    stage_values(a, c, n, vt);
    stage_weights(s, n, (R + 15) / 16, pw);
    int64_t r = 0;
    for (; r + kBfRows <= R; r += kBfRows) accumulate_rows<kBfRows>(a, pw, vt, f, pairs, r);
    if (r < R) accumulate_tail<kBfRows - 1>(R - r, a, pw, vt, f, pairs, r);
  }
};

}  // namespace

void decompressed_flash_avx512bf16(const DecompressedFlashArgs& args) { decompressed_flash_run<Avx512, Bf16Values>(args); }

}  // namespace deepmla::kernels
