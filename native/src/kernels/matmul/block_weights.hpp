#pragma once
// The 32-value block formats with an fp16 scale (Q8_0, Q6_0) as the AVX512 kernels read
// them: a block's quants as 32 unsigned bytes u = q + kOffset (vpdpbusd multiplies
// unsigned by signed bytes; the AMX kernels subtract kOffset again). Uses AVX2 integer
// instructions only. Internal linkage: see kernels/matmul/tiling.hpp.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "formats/blocks.hpp"

namespace deepmla::kernels {
namespace {

struct Q8_0Weights {
  using Block = formats::BlockQ8_0;
  static constexpr int kOffset = 128;
  static __m256i unsigned_values(const Block* b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs));
    return _mm256_xor_si256(q, _mm256_set1_epi8(char(0x80)));  // q + 128, a sign-bit flip
  }
};

// The six-bit quants are already unsigned (q in 0..63, value q - 32); the same unpacking
// as matmul_q6_0_avx2.cpp, without its final - 32.
struct Q6_0Weights {
  using Block = formats::BlockQ6_0;
  static constexpr int kOffset = 32;
  static __m256i unsigned_values(const Block* b) {
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
    const __m256i low4 = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), _mm_and_si128(qs, m4));
    uint64_t qh;
    std::memcpy(&qh, b->qh, 8);
    __m256i h = _mm256_set1_epi64x(int64_t(qh));
    h = _mm256_sllv_epi64(h, _mm256_set_epi64x(0, 2, 0, 4));
    h = _mm256_srlv_epi64(h, _mm256_set_epi64x(2, 0, 0, 0));
    return _mm256_or_si256(low4, _mm256_and_si256(h, _mm256_set1_epi8(0x30)));
  }
};

}  // namespace
}  // namespace deepmla::kernels
