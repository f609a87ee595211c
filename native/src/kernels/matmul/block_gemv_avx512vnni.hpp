#pragma once
// The AVX512-VNNI GEMV (one activation row) for weights in 32-value blocks with an fp16
// scale (Q8_0, Q6_0) against a Q8_0 activation row: block_gemv_avx2.hpp's streaming shape
// (one weight row at a time, software prefetch ahead of the stream, 8 block dots reduced
// to one vector of block sums, one FMA per 8 blocks), with one 256-bit vpdpbusd per block
// instead of maddubs + madd (+ abs + sign). Weights come as unsigned u = q + kOffset
// (the Weights of block_tile_avx512vnni.hpp); kOffset * sum(a) per block is subtracted in
// int32 (exact).
//
// The 4 x 4 in-place tiles it replaces for n = 1 read 4 rows side by side, 4 streams per
// core and no prefetch: 13.9 GB/s of Q8_0 weights on 2 Zen4 cores against 23.3 GB/s for
// the AVX2 GEMV and ~30 for a plain read.
#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/block_gemv_avx2.hpp"

namespace deepmla::kernels {
namespace {

template <class Weights>
void run_gemv_vnni(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                   float* y) {
  using Block = typename Weights::Block;
  using formats::BlockQ8_0;
  const int64_t nb = k / 32, nb8 = nb - nb % 8;
  const BlockQ8_0* xb = reinterpret_cast<const BlockQ8_0*>(x);
  GemvActivation& act = gemv_scratch();
  gemv_activation<Weights::kOffset>(nb, xb, act);
  const float* dx = act.d.data();
  const int32_t* off = act.offset.data();
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t r = r0; r < r1; ++r) {
    const Block* wb = reinterpret_cast<const Block*>(w + size_t(r) * w_row_bytes);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb8; b += 8) {
      const char* ahead = reinterpret_cast<const char*>(wb + b) + kPrefetchBytes;
      // The 8 blocks' bytes, line by line (the next group's first line covers the rest).
      DEEPMLA_UNROLL
      for (int line = 0; line < int(8 * sizeof(Block) + 63) / 64; ++line) _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
      __m256i p[8];
      DEEPMLA_UNROLL
      for (int j = 0; j < 8; ++j)
        p[j] = _mm256_dpbusd_epi32(zero, Weights::unsigned_values(wb + b + j),
                                   _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b + j].qs)));
      const __m256i s = _mm256_sub_epi32(reduce_8x8_epi32(p), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(off + b)));
      const __m128i dw16 = _mm_set_epi16(short(wb[b + 7].d), short(wb[b + 6].d), short(wb[b + 5].d),
                                         short(wb[b + 4].d), short(wb[b + 3].d), short(wb[b + 2].d),
                                         short(wb[b + 1].d), short(wb[b + 0].d));
      const __m256 scale = _mm256_mul_ps(_mm256_cvtph_ps(dw16), _mm256_loadu_ps(dx + b));
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc);
    }
    float sum = hsum_ps(acc);
    for (int64_t b = nb8; b < nb; ++b) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b].qs));
      const int32_t s = hsum_epi32(_mm256_dpbusd_epi32(zero, Weights::unsigned_values(wb + b), a)) - off[b];
      sum += float(s) * (_cvtsh_ss(wb[b].d) * dx[b]);
    }
    y[r] = sum;
  }
}

}  // namespace
}  // namespace deepmla::kernels
