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

// The 32 six-bit values of a Q6_0 block (blocks.hpp) as stored, q in [0, 63] (value q - 32).
inline __m256i q6_0_unsigned_values(const formats::BlockQ6_0* b) {
  // Low nibbles are values 0..15, high nibbles values 16..31: the 16 bytes in both
  // halves (a load), the upper half shifted down by 4, then masked.
  const __m256i qs = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs)));
  const __m256i low4 =
      _mm256_and_si256(_mm256_srlv_epi32(qs, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0)), _mm256_set1_epi8(0x0f));
  // Top two bits: value v's sit in qh[v % 8] at bits 0-1 (v < 8), 4-5 (8..15),
  // 2-3 (16..23), 6-7 (24..31). Broadcast qh to the four 8-byte lanes and shift each
  // lane so those bits land on bits 4-5 of every byte; bits shifted in from the
  // neighbouring byte fall outside the 0x30 mask.
  uint64_t qh;
  std::memcpy(&qh, b->qh, 8);
  __m256i h = _mm256_set1_epi64x(int64_t(qh));
  h = _mm256_sllv_epi64(h, _mm256_set_epi64x(0, 2, 0, 4));
  h = _mm256_srlv_epi64(h, _mm256_set_epi64x(2, 0, 0, 0));
  return _mm256_or_si256(low4, _mm256_and_si256(h, _mm256_set1_epi8(0x30)));
}

// The six-bit quants are already unsigned.
struct Q6_0Weights {
  using Block = formats::BlockQ6_0;
  static constexpr int kOffset = 32;
  static __m256i unsigned_values(const Block* b) { return q6_0_unsigned_values(b); }
};

}  // namespace
}  // namespace deepmla::kernels
