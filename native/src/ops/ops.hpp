#pragma once
// Shared helpers of the op implementations: operand checks at compile time (so a bad
// graph is an INVALID_GRAPH error naming the op, never a wild write) and row access.
#include <string>
#include <vector>

#include "deepmla/error.hpp"
#include "deepmla/graph.hpp"

namespace deepmla::ops {

[[noreturn]] void op_error(const CompiledOp& op, const std::string& why);
void expect_arity(const CompiledOp& op, size_t n_in, size_t n_out);
void expect_type(const CompiledOp& op, const Tensor& t, TensorType type);
void expect_ne(const CompiledOp& op, const Tensor& t, std::array<int64_t, 4> ne);
void expect_same_ne(const CompiledOp& op, const Tensor& a, const Tensor& b);
double param(const CompiledOp& op, const char* name);
double param_or(const CompiledOp& op, const char* name, double fallback);

// Rows of a view: everything but the innermost dimension, flattened.
inline int64_t n_rows(const Tensor& t) { return t.desc.ne[1] * t.desc.ne[2] * t.desc.ne[3]; }
inline uint8_t* row_ptr(const Tensor& t, int64_t row) {
  const int64_t i1 = row % t.desc.ne[1], i2 = (row / t.desc.ne[1]) % t.desc.ne[2], i3 = row / (t.desc.ne[1] * t.desc.ne[2]);
  return t.data + i1 * t.desc.nb[1] + i2 * t.desc.nb[2] + i3 * t.desc.nb[3];
}
inline float* row_f32(const Tensor& t, int64_t row) { return reinterpret_cast<float*>(row_ptr(t, row)); }

// Splits [0, n) into chunks of a multiple of `granule` so that there are a few per thread.
int64_t chunk_size(int64_t n, int n_threads, int64_t granule);
// Weight rows per matmul task for n activation rows: GEMV-like n (<= kGemvMaxN) gets one
// contiguous share per thread (>= 64 rows); larger n the usual chunk_size(m, threads, 16).
constexpr int64_t kGemvMaxN = 3;
// What a thread done with its GEMV share takes from another's at a time (ThreadPool::
// parallel_shares): a few microseconds of streaming, so the two end close together.
constexpr size_t kGemvStealBytes = 128 * 1024;
int64_t matmul_row_chunk(int64_t m, int64_t n, int n_threads);

// The op table: kind -> bind function. Each bind checks operands, sets run and scratch.
using BindFn = void (*)(CompiledOp& op, const Context& context, int64_t n_tokens);
void bind_get_rows(CompiledOp&, const Context&, int64_t);
void bind_rms_norm(CompiledOp&, const Context&, int64_t);
void bind_add(CompiledOp&, const Context&, int64_t);
void bind_swiglu(CompiledOp&, const Context&, int64_t);
void bind_copy(CompiledOp&, const Context&, int64_t);
void bind_rope(CompiledOp&, const Context&, int64_t);
void bind_kv_store(CompiledOp&, const Context&, int64_t);
void bind_kv_store_transposed(CompiledOp&, const Context&, int64_t);
void bind_matmul(CompiledOp&, const Context&, int64_t);
void bind_moe_route(CompiledOp&, const Context&, int64_t);
void bind_moe_ffn(CompiledOp&, const Context&, int64_t);
void bind_attn_absorbed(CompiledOp&, const Context&, int64_t);
void bind_attn_standard(CompiledOp&, const Context&, int64_t);
void bind_attn_decompressed(CompiledOp&, const Context&, int64_t);

}  // namespace deepmla::ops
