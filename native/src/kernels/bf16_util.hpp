#pragma once
// Bit casts between __m512i and __m512bh for the AVX512-BF16 kernels: the intrinsics take
// __m512bh, loads and shuffles give __m512i, and GCC 12 has no cast intrinsic between
// them. Only files built with -mavx512bf16 (or the SIMDe emulation) include this.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include <immintrin.h>

#include <cstring>

namespace deepmla::kernels {
namespace {

inline __m512bh bf16_bits(__m512i v) {
  __m512bh out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}

inline __m512i bf16_as_int(__m512bh v) {
  __m512i out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}

}  // namespace
}  // namespace deepmla::kernels
