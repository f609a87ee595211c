// Q8_0: blocks of 32 values, an fp16 scale then 32 int8 (DESIGN.md "GGUF facts").
// Its vec_dot_type is Q8_0 itself: activations are quantized to Q8_0 on the fly.
#include <cmath>

#include "formats/formats.hpp"
#include "formats/blocks.hpp"

namespace deepmla::formats {

static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");

void q8_0_dequantize_row(const void* src, float* dst, int64_t n) {
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / 32; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < 32; ++j) dst[i * 32 + j] = d * float(b[i].qs[j]);
  }
}

// Reference method: scale = max|x| / 127, round half away from zero.
void q8_0_quantize_row(const float* src, void* dst, int64_t n) {
  BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / 32; ++i) {
    const float* x = src + i * 32;
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = quantization_inverse(d);
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < 32; ++j) b[i].qs[j] = int8_t(std::round(x[j] * id));
  }
}

float q8_0_vec_dot(int64_t n, const void* row, const void* activation_row) {
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(row);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(activation_row);
  float sum = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += int32_t(a[i].qs[j]) * int32_t(b[i].qs[j]);
    sum += float(s) * fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d);
  }
  return sum;
}

}  // namespace deepmla::formats
