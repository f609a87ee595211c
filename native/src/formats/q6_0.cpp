// Q6_0: blocks of 32 six-bit values, 26 bytes (ik_llama.cpp type 133; layout in blocks.hpp).
// Its vec_dot_type is Q8_0, as in ik_llama.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/blocks.hpp"
#include "formats/formats.hpp"

namespace deepmla::formats {

static_assert(sizeof(BlockQ6_0) == 26, "Q6_0 block is 26 bytes");

static inline void q6_0_unpack(const BlockQ6_0& b, int8_t q[32]) {
  for (int j = 0; j < 16; ++j) {
    const uint8_t h = uint8_t(b.qh[j % 8] >> (4 * (j / 8)));
    q[j] = int8_t(((b.qs[j] & 0x0f) | ((h << 4) & 0x30)) - 32);
    q[j + 16] = int8_t(((b.qs[j] >> 4) | ((h << 2) & 0x30)) - 32);
  }
}

void q6_0_dequantize_row(const void* src, float* dst, int64_t n) {
  const BlockQ6_0* b = static_cast<const BlockQ6_0*>(src);
  int8_t q[32];
  for (int64_t i = 0; i < n / 32; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    q6_0_unpack(b[i], q);
    for (int j = 0; j < 32; ++j) dst[i * 32 + j] = float(q[j]) * d;
  }
}

// Scale from the value of largest magnitude mapped to -32, then refined by a
// weighted least-squares fit of the scale to the chosen quants.
void q6_0_quantize_row(const float* src, void* dst, int64_t n) {
  BlockQ6_0* b = static_cast<BlockQ6_0*>(dst);
  for (int64_t i = 0; i < n / 32; ++i) {
    const float* x = src + i * 32;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -32.0f;
    const float id = quantization_inverse(d);
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 16; ++j) {
      const float v0 = x[j] * id, v1 = x[j + 16] * id;
      const uint8_t q0 = uint8_t(std::min(63, int(int8_t(v0 + 32.5f))));
      const uint8_t q1 = uint8_t(std::min(63, int(int8_t(v1 + 32.5f))));
      b[i].qs[j] = uint8_t((q0 & 0x0f) | ((q1 & 0x0f) << 4));
      const uint8_t h = uint8_t((q0 >> 4) | ((q1 >> 4) << 2));
      b[i].qh[j % 8] |= uint8_t(h << (4 * (j / 8)));
      const float w0 = v0 * v0, w1 = v1 * v1;
      const float f0 = float(q0) - 32.0f, f1 = float(q1) - 32.0f;
      sumqx += w0 * x[j] * f0 + w1 * x[j + 16] * f1;
      sumq2 += w0 * f0 * f0 + w1 * f1 * f1;
    }
    b[i].d = fp32_to_fp16(sumq2 > 0 ? sumqx / sumq2 : d);
  }
}

float q6_0_vec_dot(int64_t n, const void* row, const void* activation_row) {
  const BlockQ6_0* a = static_cast<const BlockQ6_0*>(row);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(activation_row);
  int8_t q[32];
  float sum = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    q6_0_unpack(a[i], q);
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += int32_t(q[j]) * int32_t(b[i].qs[j]);
    sum += float(s) * fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d);
  }
  return sum;
}

}  // namespace deepmla::formats
