#include "kernels/attention/decompressed_flash.hpp"
#include "kernels/attention/simd_avx2.hpp"

namespace deepmla::kernels {

void decompressed_flash_avx2(const DecompressedFlashArgs& args) { decompressed_flash_run<Avx2>(args); }

}  // namespace deepmla::kernels
