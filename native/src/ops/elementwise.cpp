// Row-wise ops: embedding lookup, RMSNorm, residual add, SwiGLU, strided copy.
#include <cmath>
#include <cstring>

#include "deepmla/kernels.hpp"
#include "ops/ops.hpp"

namespace deepmla::ops {

namespace {

// Runs fn(row) for every row of t, a few rows per task.
template <class F>
void for_rows(ExecState& s, int64_t rows, F&& fn) {
  const int64_t chunk = chunk_size(rows, s.pool->size(), 1);
  s.pool->parallel_for((rows + chunk - 1) / chunk, [&](int64_t task, int) {
    const int64_t end = std::min(rows, (task + 1) * chunk);
    for (int64_t r = task * chunk; r < end; ++r) fn(r);
  });
}

void run_get_rows(const CompiledOp& op, ExecState& s) {
  const Tensor &table = *op.in[0], &ids = *op.in[1], &out = *op.out[0];
  const TypeTraits& t = type_traits(table.desc.type);
  const int32_t* id = ids.ptr<int32_t>();
  for_rows(s, n_rows(out), [&](int64_t r) {
    if (id[r] < 0 || id[r] >= table.desc.ne[1])
      fail(codes::kInvalidOption, "token id " + std::to_string(id[r]) + " is outside the vocabulary of " +
                                      std::to_string(table.desc.ne[1]));
    t.dequantize_row(table.data + id[r] * table.desc.nb[1], row_f32(out, r), table.desc.ne[0]);
  });
}

void run_rms_norm(const CompiledOp& op, ExecState& s) {
  const Tensor &x = *op.in[0], &w = *op.in[1], &y = *op.out[0];
  const float eps = float(param(op, "eps"));
  const int64_t n = x.desc.ne[0];
  const float* weight = w.ptr<float>();
  for_rows(s, n_rows(x), [&](int64_t r) {
    const float* xr = row_f32(x, r);
    float* yr = row_f32(y, r);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += double(xr[i]) * double(xr[i]);
    const float scale = float(1.0 / std::sqrt(sum / double(n) + double(eps)));
    for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * scale * weight[i];
  });
}

void run_add(const CompiledOp& op, ExecState& s) {
  const Tensor &a = *op.in[0], &b = *op.in[1], &c = *op.out[0];
  const int64_t n = a.desc.ne[0];
  for_rows(s, n_rows(a), [&](int64_t r) {
    const float *ar = row_f32(a, r), *br = row_f32(b, r);
    float* cr = row_f32(c, r);
    for (int64_t i = 0; i < n; ++i) cr[i] = ar[i] + br[i];
  });
}

void run_swiglu(const CompiledOp& op, ExecState& s) {
  const Tensor &gate = *op.in[0], &up = *op.in[1], &out = *op.out[0];
  const int64_t n = gate.desc.ne[0];
  const SwigluRowFn swiglu = swiglu_kernel().fn;
  for_rows(s, n_rows(gate), [&](int64_t r) { swiglu(row_f32(gate, r), row_f32(up, r), row_f32(out, r), n); });
}

void run_copy(const CompiledOp& op, ExecState& s) {
  const Tensor &src = *op.in[0], &dst = *op.out[0];
  const int64_t n = src.desc.ne[0];
  for_rows(s, n_rows(src), [&](int64_t r) { std::memmove(row_f32(dst, r), row_f32(src, r), sizeof(float) * size_t(n)); });
}

void bind_f32_rows(CompiledOp& op, size_t n_in) {
  expect_arity(op, n_in, 1);
  for (Tensor* t : op.in) expect_type(op, *t, TensorType::F32);
  expect_type(op, *op.out[0], TensorType::F32);
  for (Tensor* t : op.in) expect_same_ne(op, *op.out[0], *t);
}

}  // namespace

void bind_get_rows(CompiledOp& op, const Context&, int64_t n_tokens) {
  expect_arity(op, 2, 1);
  const Tensor &table = *op.in[0], &ids = *op.in[1], &out = *op.out[0];
  expect_type(op, ids, TensorType::I32);
  expect_type(op, out, TensorType::F32);
  if (table.desc.storage != Storage::WEIGHT) op_error(op, "the table must be a weight");
  expect_ne(op, ids, {n_tokens, 1, 1, 1});
  expect_ne(op, out, {table.desc.ne[0], n_tokens, 1, 1});
  op.run = run_get_rows;
}

void bind_rms_norm(CompiledOp& op, const Context&, int64_t) {
  expect_arity(op, 2, 1);
  const Tensor &x = *op.in[0], &w = *op.in[1], &y = *op.out[0];
  expect_type(op, x, TensorType::F32);
  expect_type(op, w, TensorType::F32);
  expect_type(op, y, TensorType::F32);
  expect_ne(op, w, {x.desc.ne[0], 1, 1, 1});
  expect_same_ne(op, x, y);
  param(op, "eps");
  op.run = run_rms_norm;
}

void bind_add(CompiledOp& op, const Context&, int64_t) {
  bind_f32_rows(op, 2);
  op.run = run_add;
}

void bind_swiglu(CompiledOp& op, const Context&, int64_t) {
  bind_f32_rows(op, 2);
  op.run = run_swiglu;
}

void bind_copy(CompiledOp& op, const Context&, int64_t) {
  bind_f32_rows(op, 1);
  op.run = run_copy;
}

}  // namespace deepmla::ops
