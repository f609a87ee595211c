#pragma once
// Block layouts of the quantized formats, shared by the scalar reference and the SIMD kernels.
#include <cmath>
#include <cstdint>

namespace deepmla::formats {

#pragma pack(push, 1)
struct BlockQ8_0 {
  uint16_t d;      // fp16 scale
  int8_t qs[32];
};

// value j = d * (q_j - 32), q_j in 0..63. For j < 16, qs[j] holds the low 4 bits of
// values j (low nibble) and j + 16 (high nibble); h = qh[j % 8] >> 4 * (j / 8) holds
// their top two bits in bits 0-1 and 2-3 (DESIGN.md, ik_llama.cpp's layout).
struct BlockQ6_0 {
  uint16_t d;
  uint8_t qh[8];
  uint8_t qs[16];
};
#pragma pack(pop)

// Q8_KV has one header per row: float scale, int32 sum of the quants, then the int8s.
struct RowHeaderQ8_KV {
  float d;
  int32_t sum;
};

// 1/d for a quantizer's scale (amax / 127, max / -32): 0 when d is 0 or so small
// (below about 2^-119) that 1/d overflows, so such a block quantizes to zeros instead of
// converting inf * x to an integer. Shared by the scalar references and the SIMD kernels
// so that both give the same bytes.
inline float quantization_inverse(float d) {
  const float id = 1.0f / d;
  return d != 0 && std::isfinite(id) ? id : 0.0f;
}

}  // namespace deepmla::formats
