// Q8_KV: one scale per row (ik_llama.cpp type 151): float d = max|x| / 127, int32 sum of
// the quants (4 meta bytes), then n int8 values rounded to nearest even. Rows are whole
// multiples of 32 values. Its vec_dot_type is Q8_KV.
#include <cmath>
#include <cstring>

#include "formats/blocks.hpp"
#include "formats/formats.hpp"

namespace deepmla::formats {

static_assert(sizeof(RowHeaderQ8_KV) == 8, "Q8_KV row header is 8 bytes");

void q8_kv_dequantize_row(const void* src, float* dst, int64_t n) {
  RowHeaderQ8_KV h;
  std::memcpy(&h, src, sizeof h);
  const int8_t* q = static_cast<const int8_t*>(src) + sizeof h;
  for (int64_t i = 0; i < n; ++i) dst[i] = h.d * float(q[i]);
}

void q8_kv_quantize_row(const float* src, void* dst, int64_t n) {
  RowHeaderQ8_KV h{0, 0};
  int8_t* q = static_cast<int8_t*>(dst) + sizeof h;
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(src[i]));
  if (amax == 0) {
    std::memset(q, 0, size_t(n));
  } else {
    h.d = amax / 127.0f;
    const float id = quantization_inverse(h.d);
    for (int64_t i = 0; i < n; ++i) {
      const int v = int(std::nearbyint(src[i] * id));
      q[i] = int8_t(v);
      h.sum += v;
    }
  }
  std::memcpy(dst, &h, sizeof h);
}

float q8_kv_vec_dot(int64_t n, const void* row, const void* activation_row) {
  RowHeaderQ8_KV ha, hb;
  std::memcpy(&ha, row, sizeof ha);
  std::memcpy(&hb, activation_row, sizeof hb);
  const int8_t* a = static_cast<const int8_t*>(row) + sizeof ha;
  const int8_t* b = static_cast<const int8_t*>(activation_row) + sizeof hb;
  int32_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += int32_t(a[i]) * int32_t(b[i]);
  return float(s) * ha.d * hb.d;
}

}  // namespace deepmla::formats
