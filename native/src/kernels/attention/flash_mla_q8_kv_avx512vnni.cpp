// Flash MLA over a Q8_KV K cache, AVX512-VNNI: int8 scores (flash_mla_vnni.hpp). The
// decompressed path's rows with k_skip are F32, never Q8_KV; any other call with k_skip
// takes the float loop.
#include "kernels/attention/convert.hpp"
#include "kernels/attention/flash_mla_vnni.hpp"

namespace deepmla::kernels {

void flash_mla_q8_kv_avx512vnni(const FlashMlaArgs& args) {
  if (args.k_skip != 0) return flash_mla_run<Avx512, convert_q8_kv>(args);
  flash_mla_run_vnni<CacheQ8_KV, FloatValues<convert_q8_kv>>(args);
}

}  // namespace deepmla::kernels
