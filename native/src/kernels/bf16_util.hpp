#pragma once
// Bit casts between __m512i and __m512bh for the AVX512-BF16 kernels (the intrinsics take
// __m512bh, loads and shuffles give __m512i, and GCC 12 has no cast intrinsic between
// them), and the pair layout vdpbf16ps multiplies. Only files built with -mavx512bf16 (or the SIMDe emulation) include this.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include <immintrin.h>

#include <cstdint>
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

// Dword c = (bf16(lo[c]), bf16(hi[c])), nearest even: the pair order of vdpbf16ps, for
// products summed over two rows (keys) per lane (channel or query row).
inline __m512i bf16_pairs(__m512 lo, __m512 hi) {
  // cvtne2ps gives lo in words 0-15 and hi in 16-31; word 2c takes c, word 2c + 1 takes 16 + c.
  alignas(64) static constexpr uint16_t kOrder[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                      8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  return _mm512_permutexvar_epi16(_mm512_load_si512(reinterpret_cast<const void*>(kOrder)),
                                  bf16_as_int(_mm512_cvtne2ps_pbh(hi, lo)));
}

}  // namespace
}  // namespace deepmla::kernels
