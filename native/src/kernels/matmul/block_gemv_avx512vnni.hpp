#pragma once
// The AVX512-VNNI GEMV (one activation row) for weights in 32-value blocks with an fp16
// scale (Q8_0, Q6_0) against a Q8_0 activation row: block_gemv_avx2.hpp's run_gemv (one
// weight row at a time, software prefetch ahead of the stream, 8 block dots reduced to
// one vector of block sums, one FMA per 8 blocks) with one 256-bit vpdpbusd per block
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

// One block's integer dot as 8 int32 lanes: vpdpbusd of the unsigned weights u = q +
// kOffset against the signed activations (run_gemv takes kOffset * sum(a) off).
struct VnniBlockDot {
  template <class Weights>
  static __m256i dot(const typename Weights::Block* wb, const formats::BlockQ8_0* xb) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), Weights::unsigned_values(wb),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb->qs)));
  }
};

template <class Weights>
void run_gemv_vnni(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                   float* y) {
  run_gemv<Weights, VnniBlockDot>(k, w, w_row_bytes, r0, r1, x, y);
}

}  // namespace
}  // namespace deepmla::kernels
