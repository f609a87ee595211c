// Flash MLA over a Q8_0 K cache, AVX512-BF16: int8 scores (flash_mla_vnni.hpp) and P V in
// bf16 dot products (flash_mla_bf16_values.hpp). Calls with k_skip take the float loop, as
// in flash_mla_q8_0_avx512vnni.cpp.
#include "kernels/attention/convert.hpp"
#include "kernels/attention/flash_mla_bf16_values.hpp"
#include "kernels/attention/flash_mla_vnni.hpp"

namespace deepmla::kernels {

void flash_mla_q8_0_avx512bf16(const FlashMlaArgs& args) {
  if (args.k_skip != 0) return flash_mla_run<Avx512, convert_q8_0>(args);
  flash_mla_run_vnni<CacheQ8_0, Bf16Values<CacheQ8_0>>(args);
}

}  // namespace deepmla::kernels
