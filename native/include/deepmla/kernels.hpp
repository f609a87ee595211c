#pragma once
// The kernel interface: every matrix multiplication in the engine goes through a
// MatmulKernel chosen per weight type and instruction set. Variants are listed in
// native/src/kernels/registry.inc; the scalar one for each type is the reference.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "deepmla/types.hpp"

namespace deepmla {

// AMX: AVX512_BF16 plus Intel's tile unit (AMX-TILE, AMX-BF16, AMX-INT8), with the OS's permission
// to use tile data (Linux arch_prctl, requested once at detection).
enum class Isa : int { SCALAR = 0, AVX2 = 1, AVX512 = 2, AVX512_VNNI = 3, AVX512_BF16 = 4, AMX = 5 };

const char* isa_name(Isa isa);
// Parses isa_name()'s spelling; false (and *out untouched) for anything else.
bool isa_from_name(const char* name, Isa* out);
// What the CPU and OS support (CPUID + XGETBV).
Isa detected_isa();
// detected_isa() capped by the DEEPMLA_ISA environment variable (scalar|avx2|avx512|...),
// or by set_isa_cap() (tests run every level the machine has).
Isa active_isa();
void set_isa_cap(Isa cap);
void clear_isa_cap();

// y[i * y_stride + r] = dot(W row r, X row i) for r in [r0, r1), i in [0, n).
// W rows are in the weight type, w_row_bytes apart; X rows are in the weight type's
// vec_dot_type (already converted), x_row_bytes apart; k = values per row.
using MatmulFn = void (*)(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                          const uint8_t* x, size_t x_row_bytes, int64_t n, float* y, size_t y_stride);

struct MatmulKernel {
  TensorType weight_type;
  Isa isa;
  const char* name;
  MatmulFn fn;
  // The rows fn reads: the weight type's vec_dot_type, or BF16 for the AMX GEMMs.
  TensorType act_type;
  // Fewest activation rows this variant is dispatched for (1: any).
  int64_t min_rows;
};

// The best variant for the weight type at the active ISA for n_rows activation rows
// (scalar always exists for F32, F16, BF16, Q8_0, Q6_0, Q8_KV; other types throw
// UNSUPPORTED). The default serves any n: callers that convert activations once for
// calls of different n (the attention's cache rows) take that one.
const MatmulKernel& matmul_kernel(TensorType weight_type, int64_t n_rows = 1);
// Bytes between the activation rows of k values that kernel reads (its act_type's row,
// padded off a multiple of 4 KiB for the tile kernels), and the largest of these over
// every variant of the weight type the machine has: a buffer laid out with it serves
// whichever variant the active ISA and n pick.
size_t activation_stride(const MatmulKernel& kernel, int64_t k);
size_t matmul_activation_stride(TensorType weight_type, int64_t k);
// Every registered variant the machine can run at the active ISA (so DEEPMLA_ISA=scalar
// runs no SIMD code at all), lowest ISA first, for tests and benchmarks.
std::vector<MatmulKernel> matmul_kernels(TensorType weight_type);
std::vector<MatmulKernel> all_matmul_kernels();

// Activation conversion: one row of n floats into an activation row (Q8_0, Q8_KV, BF16,
// or an F32 copy). Every variant writes exactly the bytes the format's scalar quantize_row
// writes, so results never depend on the ISA that converted the activations.
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);

struct QuantizeKernel {
  TensorType type;
  Isa isa;
  const char* name;
  QuantizeRowFn fn;
};

// The best converter at the active ISA; the type's scalar quantize_row when no variant
// is registered (throws UNSUPPORTED for unknown types).
QuantizeRowFn activation_quantizer(TensorType vec_dot_type);
// Every registered converter the machine can run at the active ISA, lowest ISA first.
std::vector<QuantizeKernel> activation_quantizers(TensorType vec_dot_type);

// SwiGLU over one row: out[i] = silu(g[i]) * u[i], silu(x) = x / (1 + e^-x). out may be
// g or u (moe_ffn writes it over g) but must not otherwise overlap them. The scalar
// variant (libm expf) is the reference; the SIMD ones compute e^x themselves and stay
// within 4 ulps of it (6 where 1 + e^-g rounds a tie), with the same infinities, signed
// zeros and NaNs (native/test/test_swiglu.cpp).
using SwigluRowFn = void (*)(const float* g, const float* u, float* out, int64_t n);

struct SwigluKernel {
  Isa isa;
  const char* name;
  SwigluRowFn fn;
};

// The best variant at the active ISA.
const SwigluKernel& swiglu_kernel();
// Every registered variant the machine can run at the active ISA, lowest ISA first.
std::vector<SwigluKernel> swiglu_kernels();


// ---- Attention ------------------------------------------------------------------------
// Flash MLA (DESIGN.md "MLA, concretely", seed 004): online-softmax attention of n_rows
// query rows (heads x queries) over K-cache rows [j0, j1), where V is the first dv values
// of each dk-wide K row. One call adds those rows to each query row's running state
// (max m, sum l, acc[dv] = unnormalised output); the caller initialises the states
// (m = -inf, l = 0, acc = 0), merges states of split KV ranges and divides by l. Variants
// are listed in native/src/kernels/attention/registry.inc, one file each.
struct FlashMlaArgs {
  int64_t dk = 0, dv = 0;            // values per cache row (576) and of V (512)
  TensorType k_type = TensorType::F16;
  const uint8_t* k = nullptr;        // cache row 0, in k_type
  size_t k_row_bytes = 0;
  int64_t j0 = 0, j1 = 0;            // cache rows to add
  int64_t k_skip = 0;                // scores use K values [k_skip, dk) (0 for MLA)
  const float* const* q = nullptr;   // [n_rows] query rows of dk - k_skip floats
  const int64_t* visible = nullptr;  // [n_rows] row r sees cache rows j < visible[r]
  int64_t n_rows = 0;
  float scale = 1;                   // applied to q . k
  float* m = nullptr;                // [n_rows]
  float* l = nullptr;                // [n_rows]
  float* acc = nullptr;              // [n_rows][acc_stride], dv used
  size_t acc_stride = 0;
  uint8_t* scratch = nullptr;        // flash_mla_scratch_bytes(dk, n_rows), 64-byte aligned
};
using FlashMlaFn = void (*)(const FlashMlaArgs& args);

struct FlashMlaKernel {
  TensorType cache_type;
  Isa isa;
  const char* name;
  FlashMlaFn fn;
  // The variant rounds q * scale to int8 per 32-value block (layout.hpp's
  // quantize_query_block) and scores with integer dots: its reference is
  // flash_mla_quantized_q_scalar, not the float flash_mla_scalar.
  bool quantized_queries = false;
  // P V multiplies bf16(softmax weight x the cache block's scale) by the exact int8
  // quants (vdpbf16ps): an output is within 2^-8 of the largest |value| of its reference.
  bool bf16_weights = false;
};

// The reference of the quantized-query variants (int8 K caches only: Q8_0, Q8_KV): the
// scalar flash MLA on the queries those variants see.
void flash_mla_quantized_q_scalar(const FlashMlaArgs& args);

// Cache rows a variant converts at a time, and the scratch any variant needs for n_rows.
constexpr int64_t kFlashMlaChunk = 32;
size_t flash_mla_scratch_bytes(int64_t dk, int64_t n_rows);
// True when the SIMD variants take these sizes (dk, dv and dk - k_skip multiples of 64);
// otherwise flash_mla_kernel() returns the scalar variant.
bool flash_mla_simd_shape(int64_t dk, int64_t dv, int64_t k_skip = 0);
// The best variant for the cache type at the active ISA (F16, BF16, Q8_0, Q8_KV, Q6_0
// and F32; other types throw UNSUPPORTED).
const FlashMlaKernel& flash_mla_kernel(TensorType cache_type, int64_t dk, int64_t dv, int64_t k_skip = 0);
// Every registered variant the machine can run at the active ISA, lowest ISA first.
std::vector<FlashMlaKernel> flash_mla_kernels(TensorType cache_type);

// One head's flash attention over a chunk of decompressed cache rows (mla 3 prompts,
// ops/attention.cpp's attn_decompressed): scores q . [k_nope ; k_pe] * scale, values v,
// read where kv_b's output and the cache's k_pe are (no [v ; k_nope ; k_pe] copies).
// Updates the online softmax states (m, l, acc) of n_rows queries, in f32.
struct DecompressedFlashArgs {
  int64_t nope = 0, rope = 0, dv = 0;
  int64_t n_rows = 0;                // queries, at most kDecompressedFlashRows
  const float* const* q = nullptr;   // [n_rows] -> nope + rope floats
  const int64_t* visible = nullptr;  // [n_rows]: query r sees keys [0, visible[r]) of the chunk
  int64_t n_keys = 0;
  const float* kv = nullptr;         // [n_keys] rows kv_stride floats apart: k_nope, then v
  size_t kv_stride = 0;
  const float* k_pe = nullptr;       // [n_keys][rope]
  float scale = 1;                   // applied to q . k
  float* m = nullptr;                // [n_rows]
  float* l = nullptr;                // [n_rows]
  float* acc = nullptr;              // [n_rows][acc_stride], dv used
  size_t acc_stride = 0;
  uint8_t* scratch = nullptr;        // decompressed_flash_scratch_bytes(nope + rope, dv), 64-byte aligned
};
using DecompressedFlashFn = void (*)(const DecompressedFlashArgs& args);
constexpr int64_t kDecompressedFlashRows = 64;
size_t decompressed_flash_scratch_bytes(int64_t dq, int64_t dv);
// The variant for a cache of this type at the active ISA when nope, rope are multiples of
// 16 and dv of 64; else nullptr (the caller takes the flash MLA kernels over copied rows).
// With AVX512-BF16 and a quantized cache (Q8_0, Q8_KV, Q6_0) it is the variant whose
// P V rounds v and P to bf16 (decompressed_flash_avx512bf16.cpp: an error below the
// cache's own); otherwise AVX512 or AVX2, all f32.
DecompressedFlashFn decompressed_flash_kernel(int64_t nope, int64_t rope, int64_t dv, TensorType cache_type);
// Its reference: one key at a time, scores and softmax in double.
void decompressed_flash_scalar(const DecompressedFlashArgs& args);

// Small float vector helpers for the other attention paths (standard, K*Q, decompressed).
struct AttentionVecOps {
  Isa isa;
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float* y, float a, const float* x, int64_t n);  // y += a x
};
const AttentionVecOps& attention_vec_ops();

}  // namespace deepmla
