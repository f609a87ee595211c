// Flash MLA over a Q8_KV K cache, AMX: int8 scores on int8 tiles (flash_mla_amx_scores.hpp)
// and P V on bf16 tiles (flash_mla_amx_values.hpp). Calls with k_skip take the float loop, as in
// flash_mla_q8_kv_avx512vnni.cpp.
#include "kernels/attention/convert.hpp"
#include "kernels/attention/flash_mla_amx_scores.hpp"
#include "kernels/attention/flash_mla_amx_values.hpp"

namespace deepmla::kernels {

void flash_mla_q8_kv_amx(const FlashMlaArgs& args) {
  if (args.k_skip != 0) return flash_mla_run<Avx512, convert_q8_kv>(args);
  flash_mla_run_vnni<CacheQ8_KV, AmxValues<CacheQ8_KV>, AmxScores<CacheQ8_KV>>(args);
}

}  // namespace deepmla::kernels
