// The attention kernel tables built from attention/registry.inc, and dispatch by cache
// type and active ISA. Compiled with baseline flags: it only takes addresses.
#include <string>

#include "deepmla/error.hpp"
#include "deepmla/kernels.hpp"
#include "kernels/attention/layout.hpp"

namespace deepmla {

namespace kernels {
#define DEEPMLA_FLASH_MLA(type, isa, symbol) void symbol(const FlashMlaArgs& args);
#define DEEPMLA_FLASH_MLA_INT8(type, isa, symbol) void symbol(const FlashMlaArgs& args);
#define DEEPMLA_FLASH_MLA_INT8_BF16PV(type, isa, symbol) void symbol(const FlashMlaArgs& args);
#define DEEPMLA_ATTENTION_VEC(isa, symbol)                   \
  float symbol##_dot(const float* a, const float* b, int64_t n); \
  void symbol##_axpy(float* y, float a, const float* x, int64_t n);
#include "kernels/attention/registry.inc"
#undef DEEPMLA_FLASH_MLA
#undef DEEPMLA_FLASH_MLA_INT8
#undef DEEPMLA_FLASH_MLA_INT8_BF16PV
#undef DEEPMLA_ATTENTION_VEC
void decompressed_flash_avx2(const DecompressedFlashArgs& args);
void decompressed_flash_avx512(const DecompressedFlashArgs& args);
void decompressed_flash_avx512bf16(const DecompressedFlashArgs& args);
}  // namespace kernels

namespace {

// The scalar variant is declared once per type in registry.inc; the compiler sees the
// same declaration repeated, which is allowed.
#define DEEPMLA_FLASH_MLA(type, isa, symbol) {TensorType::type, Isa::isa, #symbol, kernels::symbol, false},
#define DEEPMLA_FLASH_MLA_INT8(type, isa, symbol) {TensorType::type, Isa::isa, #symbol, kernels::symbol, true},
#define DEEPMLA_FLASH_MLA_INT8_BF16PV(type, isa, symbol) \
  {TensorType::type, Isa::isa, #symbol, kernels::symbol, true, true},
#define DEEPMLA_ATTENTION_VEC(isa, symbol)
const FlashMlaKernel kFlashMla[] = {
#include "kernels/attention/registry.inc"
};
#undef DEEPMLA_FLASH_MLA
#undef DEEPMLA_FLASH_MLA_INT8
#undef DEEPMLA_FLASH_MLA_INT8_BF16PV
#undef DEEPMLA_ATTENTION_VEC

#define DEEPMLA_FLASH_MLA(type, isa, symbol)
#define DEEPMLA_FLASH_MLA_INT8(type, isa, symbol)
#define DEEPMLA_FLASH_MLA_INT8_BF16PV(type, isa, symbol)
#define DEEPMLA_ATTENTION_VEC(isa, symbol) {Isa::isa, kernels::symbol##_dot, kernels::symbol##_axpy},
const AttentionVecOps kVecOps[] = {
#include "kernels/attention/registry.inc"
};
#undef DEEPMLA_FLASH_MLA
#undef DEEPMLA_FLASH_MLA_INT8
#undef DEEPMLA_FLASH_MLA_INT8_BF16PV
#undef DEEPMLA_ATTENTION_VEC

}  // namespace

size_t flash_mla_scratch_bytes(int64_t dk, int64_t n_rows) { return kernels::flash_mla_layout(dk, n_rows).total; }

bool flash_mla_simd_shape(int64_t dk, int64_t dv, int64_t k_skip) {
  return dk > 0 && dv > 0 && k_skip >= 0 && k_skip < dk && dk % 64 == 0 && dv % 64 == 0 && k_skip % 64 == 0 &&
         dv <= dk;
}

const FlashMlaKernel& flash_mla_kernel(TensorType cache_type, int64_t dk, int64_t dv, int64_t k_skip) {
  const Isa level = flash_mla_simd_shape(dk, dv, k_skip) ? active_isa() : Isa::SCALAR;
  const FlashMlaKernel* found = nullptr;
  for (const FlashMlaKernel& k : kFlashMla)
    if (k.cache_type == cache_type && k.isa <= level && (!found || k.isa >= found->isa)) found = &k;
  if (!found) fail(codes::kUnsupported, std::string("no flash MLA kernel for cache type ") + type_name(cache_type));
  return *found;
}

std::vector<FlashMlaKernel> flash_mla_kernels(TensorType cache_type) {
  const Isa level = active_isa();
  std::vector<FlashMlaKernel> out;
  for (int isa = 0; isa <= int(level); ++isa)
    for (const FlashMlaKernel& k : kFlashMla)
      if (int(k.isa) == isa && k.cache_type == cache_type) out.push_back(k);
  return out;
}

size_t decompressed_flash_scratch_bytes(int64_t dq, int64_t dv) { return kernels::decompressed_flash_scratch(dq, dv).total; }

DecompressedFlashFn decompressed_flash_kernel(int64_t nope, int64_t rope, int64_t dv, TensorType cache_type) {
  if (nope <= 0 || rope < 0 || nope % 16 != 0 || rope % 16 != 0 || dv <= 0 || dv % 64 != 0) return nullptr;
  const Isa level = active_isa();
  // Over a quantized cache bf16 values and weights err less than the cache already does.
  const bool quantized =
      cache_type == TensorType::Q8_0 || cache_type == TensorType::Q8_KV || cache_type == TensorType::Q6_0;
  if (level >= Isa::AVX512_BF16 && quantized)
    return kernels::decompressed_flash_avx512bf16;
  if (level >= Isa::AVX512) return kernels::decompressed_flash_avx512;
  if (level >= Isa::AVX2) return kernels::decompressed_flash_avx2;
  return nullptr;
}

const AttentionVecOps& attention_vec_ops() {
  const Isa level = active_isa();
  const AttentionVecOps* found = &kVecOps[0];
  for (const AttentionVecOps& v : kVecOps)
    if (v.isa <= level && v.isa >= found->isa) found = &v;
  return *found;
}

}  // namespace deepmla
