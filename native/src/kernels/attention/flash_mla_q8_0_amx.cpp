// Flash MLA over a Q8_0 K cache, AMX: int8 scores on int8 tiles (flash_mla_amx_scores.hpp)
// and P V on bf16 tiles (flash_mla_amx_values.hpp). Calls with k_skip take the float loop, as in
// flash_mla_q8_0_avx512vnni.cpp.
#include "kernels/attention/convert.hpp"
#include "kernels/attention/flash_mla_amx_scores.hpp"
#include "kernels/attention/flash_mla_amx_values.hpp"

namespace deepmla::kernels {

void flash_mla_q8_0_amx(const FlashMlaArgs& args) {
  if (args.k_skip != 0) return flash_mla_run<Avx512, convert_q8_0>(args);
  flash_mla_run_vnni<CacheQ8_0, AmxValues<CacheQ8_0>, AmxScores<CacheQ8_0>>(args);
}

}  // namespace deepmla::kernels
