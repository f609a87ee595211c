// Scalar activation converters: the formats' reference quantize_row, registered so that
// tests and dispatch see them like any other variant.
#include "formats/formats.hpp"

namespace deepmla::kernels {

void quantize_f32_scalar(const float* src, void* dst, int64_t n) { formats::f32_quantize_row(src, dst, n); }
void quantize_bf16_scalar(const float* src, void* dst, int64_t n) { formats::bf16_quantize_row(src, dst, n); }
void quantize_q8_0_scalar(const float* src, void* dst, int64_t n) { formats::q8_0_quantize_row(src, dst, n); }
void quantize_q8_kv_scalar(const float* src, void* dst, int64_t n) { formats::q8_kv_quantize_row(src, dst, n); }

}  // namespace deepmla::kernels
