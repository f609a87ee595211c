#include "kernels/attention/decompressed_flash.hpp"
#include "kernels/attention/simd_avx512.hpp"

namespace deepmla::kernels {

void decompressed_flash_avx512(const DecompressedFlashArgs& args) { decompressed_flash_run<Avx512>(args); }

}  // namespace deepmla::kernels
