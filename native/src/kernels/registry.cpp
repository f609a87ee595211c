// The kernel tables built from registry.inc, and dispatch by (op, type, active ISA).
// Compiled with baseline flags: it only takes addresses of the SIMD variants.
#include <algorithm>
#include <string>

#include "deepmla/error.hpp"
#include "deepmla/kernels.hpp"

namespace deepmla {

namespace kernels {
#define DEEPMLA_KERNEL_matmul(symbol)                                                               \
  void symbol(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x, \
              size_t x_row_bytes, int64_t n, float* y, size_t y_stride);
#define DEEPMLA_KERNEL_gemm_bf16(symbol) DEEPMLA_KERNEL_matmul(symbol)
#define DEEPMLA_KERNEL_quantize(symbol) void symbol(const float* src, void* dst, int64_t n);
#define DEEPMLA_KERNEL_swiglu(symbol) void symbol(const float* g, const float* u, float* out, int64_t n);
#define DEEPMLA_KERNEL(op, type, isa, symbol) DEEPMLA_KERNEL_##op(symbol)
#include "kernels/registry.inc"
#undef DEEPMLA_KERNEL
#undef DEEPMLA_KERNEL_matmul
#undef DEEPMLA_KERNEL_gemm_bf16
#undef DEEPMLA_KERNEL_quantize
#undef DEEPMLA_KERNEL_swiglu
}  // namespace kernels

namespace {

// Below this many activation rows the AMX tiles run mostly on padding and the weight
// conversion is spread over too few rows: the VNNI kernels are faster (bench/kernels.cpp).
constexpr int64_t kBf16GemmMinRows = 16;

#define DEEPMLA_KERNEL_matmul(type, isa, symbol) \
  {TensorType::type, Isa::isa, #symbol, kernels::symbol, type_traits(TensorType::type).vec_dot_type, 1},
#define DEEPMLA_KERNEL_gemm_bf16(type, isa, symbol) \
  {TensorType::type, Isa::isa, #symbol, kernels::symbol, TensorType::BF16, kBf16GemmMinRows},
#define DEEPMLA_KERNEL_quantize(type, isa, symbol)
#define DEEPMLA_KERNEL_swiglu(type, isa, symbol)
#define DEEPMLA_KERNEL(op, type, isa, symbol) DEEPMLA_KERNEL_##op(type, isa, symbol)
const MatmulKernel kMatmulKernels[] = {
#include "kernels/registry.inc"
};
#undef DEEPMLA_KERNEL_matmul
#undef DEEPMLA_KERNEL_gemm_bf16
#undef DEEPMLA_KERNEL_quantize

#define DEEPMLA_KERNEL_matmul(type, isa, symbol)
#define DEEPMLA_KERNEL_gemm_bf16(type, isa, symbol)
#define DEEPMLA_KERNEL_quantize(type, isa, symbol) {TensorType::type, Isa::isa, #symbol, kernels::symbol},
const QuantizeKernel kQuantizeKernels[] = {
#include "kernels/registry.inc"
};
#undef DEEPMLA_KERNEL_quantize
#undef DEEPMLA_KERNEL_swiglu

#define DEEPMLA_KERNEL_quantize(type, isa, symbol)
#define DEEPMLA_KERNEL_swiglu(type, isa, symbol) {Isa::isa, #symbol, kernels::symbol},
const SwigluKernel kSwigluKernels[] = {
#include "kernels/registry.inc"
};
#undef DEEPMLA_KERNEL_matmul
#undef DEEPMLA_KERNEL_gemm_bf16
#undef DEEPMLA_KERNEL_quantize
#undef DEEPMLA_KERNEL_swiglu
#undef DEEPMLA_KERNEL

TensorType type_of(const MatmulKernel& kernel) { return kernel.weight_type; }
TensorType type_of(const QuantizeKernel& kernel) { return kernel.type; }
TensorType type_of(const SwigluKernel&) { return TensorType::F32; }

// Runnable variants of one type, lowest ISA first (stable for equal ISAs).
template <class Kernel, size_t N>
std::vector<Kernel> runnable(const Kernel (&table)[N], TensorType type, bool any_type) {
  const Isa level = active_isa();
  std::vector<Kernel> out;
  for (int isa = 0; isa <= int(level); ++isa)
    for (const Kernel& kernel : table)
      if (int(kernel.isa) == isa && (any_type || type_of(kernel) == type)) out.push_back(kernel);
  return out;
}

bool serves(const MatmulKernel& kernel, int64_t rows) { return kernel.min_rows <= rows; }
template <class Kernel>
bool serves(const Kernel&, int64_t) { return true; }

template <class Kernel, size_t N>
const Kernel* best(const Kernel (&table)[N], TensorType type, int64_t rows = 1) {
  const Isa level = active_isa();
  const Kernel* found = nullptr;
  for (const Kernel& kernel : table)
    if (type_of(kernel) == type && kernel.isa <= level && serves(kernel, rows) && (!found || kernel.isa >= found->isa))
      found = &kernel;
  return found;
}

}  // namespace

const MatmulKernel& matmul_kernel(TensorType weight_type, int64_t n_rows) {
  const MatmulKernel* kernel = best(kMatmulKernels, weight_type, std::max<int64_t>(1, n_rows));
  if (!kernel)
    fail(codes::kUnsupported, std::string("no matmul kernel for weight type ") + type_name(weight_type));
  return *kernel;
}

size_t matmul_activation_stride(TensorType weight_type, int64_t k) {
  size_t stride = 0;
  const Isa level = detected_isa();
  for (const MatmulKernel& kernel : kMatmulKernels)
    if (kernel.weight_type == weight_type && kernel.isa <= level) stride = std::max(stride, activation_stride(kernel, k));
  return stride;
}

size_t activation_stride(const MatmulKernel& kernel, int64_t k) {
  const size_t bytes = row_bytes(kernel.act_type, k);
  // Tile loads read 16 rows at once: rows a multiple of 4 KiB apart would all fall in
  // one L1 set.
  return kernel.min_rows > 1 && bytes % 4096 == 0 ? bytes + 64 : bytes;
}

std::vector<MatmulKernel> matmul_kernels(TensorType weight_type) {
  return runnable(kMatmulKernels, weight_type, false);
}

std::vector<MatmulKernel> all_matmul_kernels() { return runnable(kMatmulKernels, TensorType::F32, true); }

QuantizeRowFn activation_quantizer(TensorType vec_dot_type) {
  if (const QuantizeKernel* kernel = best(kQuantizeKernels, vec_dot_type)) return kernel->fn;
  return type_traits(vec_dot_type).quantize_row;  // throws for unknown types
}

std::vector<QuantizeKernel> activation_quantizers(TensorType vec_dot_type) {
  return runnable(kQuantizeKernels, vec_dot_type, false);
}

// The scalar variant always exists and runs: best() cannot come back empty.
const SwigluKernel& swiglu_kernel() { return *best(kSwigluKernels, TensorType::F32); }

std::vector<SwigluKernel> swiglu_kernels() { return runnable(kSwigluKernels, TensorType::F32, false); }

}  // namespace deepmla
