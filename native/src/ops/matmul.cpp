// y = W x through the kernel registry: activations are converted once to what the chosen
// variant reads (the weight's vec_dot_type, or bf16 for an AMX GEMM), then weight rows
// are split across threads. W may be 3-D (one matrix per head, e.g. attn_k_b), with
// x [K, nHead, nTokens] -> y [M, nHead, nTokens].
#include <algorithm>

#include "deepmla/kernels.hpp"
#include "ops/ops.hpp"

namespace deepmla::ops {

namespace {

struct MatmulShape {
  int64_t k, m, batch, n;  // n: activation rows per batch entry
  size_t x_row_bytes;
};

MatmulShape shape_of(const CompiledOp& op) {
  const Tensor &w = *op.in[0], &x = *op.in[1];
  MatmulShape s;
  s.k = w.desc.ne[0];
  s.m = w.desc.ne[1];
  s.batch = w.desc.ne[2];
  s.n = s.batch == 1 ? n_rows(x) : x.desc.ne[2];
  s.x_row_bytes = row_bytes(type_traits(w.desc.type).vec_dot_type, s.k);
  return s;
}

}  // namespace

int64_t matmul_row_chunk(int64_t m, int64_t n, int n_threads) {
  if (n <= kGemvMaxN) {
    // Bandwidth-bound: each thread streams one contiguous share of the rows (n_threads
    // tasks, the last one possibly shorter), in whole 8-row panels, never below 64 rows.
    int64_t chunk = (m + n_threads - 1) / n_threads;
    chunk = (chunk + 7) / 8 * 8;
    return chunk < 64 ? 64 : chunk;
  }
  return chunk_size(m, n_threads, 16);
}

namespace {

void run_matmul(const CompiledOp& op, ExecState& st) {
  const Tensor &w = *op.in[0], &x = *op.in[1], &y = *op.out[0];
  MatmulShape s = shape_of(op);
  // Micro-batches of 16+ rows may take a GEMM over other activations (AMX: bf16 rows).
  const MatmulKernel& kernel = matmul_kernel(w.desc.type, s.n);
  s.x_row_bytes = activation_stride(kernel, s.k);
  const QuantizeRowFn quantize = activation_quantizer(kernel.act_type);
  uint8_t* xq = st.shared_scratch;
  // Convert activations: row (b, i) lands at xq + (b * n + i) * x_row_bytes.
  const int64_t total = s.batch * s.n;
  const int64_t qchunk = chunk_size(total, st.pool->size(), 1);
  st.pool->parallel_for((total + qchunk - 1) / qchunk, [&](int64_t task, int) {
    for (int64_t r = task * qchunk; r < std::min(total, (task + 1) * qchunk); ++r) {
      const float* src = s.batch == 1 ? row_f32(x, r) : x.ptr<float>(r / s.n, r % s.n);
      const int64_t b = s.batch == 1 ? 0 : r / s.n, i = s.batch == 1 ? r : r % s.n;
      quantize(src, xq + size_t(b * s.n + i) * s.x_row_bytes, s.k);
    }
  });
  const int64_t chunk = matmul_row_chunk(s.m, s.n, st.pool->size());
  const size_t y_stride = size_t((s.batch == 1 ? y.desc.nb[1] : y.desc.nb[2]) / 4);
  if (s.n <= kGemvMaxN) {
    // Bandwidth-bound: a share per thread, and the one done first takes rows of the other
    // 128 KB at a time (parallel_shares): in token generation the second of two threads
    // started a 200 us GEMV ~2 us late and ended 10-30 us apart from the first (Zen5).
    // One matrix per head (attn_k_b, attn_v_b) is one stream too, all heads' rows in the
    // shares: as 2 tasks per head (32 pieces of 64 KB, each starting its stream cold) the F16
    // pair took 93 and 85 us a call, then 72 and 70 (tg128, alternated token by token).
    const int64_t steal = std::max<int64_t>(8, int64_t(kGemvStealBytes / size_t(w.desc.nb[1])));
    const int64_t total_rows = s.batch * s.m;
    st.pool->parallel_shares(total_rows, matmul_row_chunk(total_rows, s.n, st.pool->size()), 8, steal,
                             [&](int64_t r0, int64_t r1, int) {
                               for (int64_t b = r0 / s.m; b * s.m < r1; ++b) {
                                 const int64_t lo = std::max(r0, b * s.m) - b * s.m;
                                 const int64_t hi = std::min(r1, (b + 1) * s.m) - b * s.m;
                                 float* yb = reinterpret_cast<float*>(y.data + b * y.desc.nb[1]);
                                 kernel.fn(s.k, w.data + b * w.desc.nb[2], size_t(w.desc.nb[1]), lo, hi,
                                           xq + size_t(b * s.n) * s.x_row_bytes, s.x_row_bytes, s.n, yb, y_stride);
                               }
                             });
    return;
  }
  // Heads enough to balance the threads: a task per head, so that the kernel sees all of a
  // head's rows at once (attn_v_b's 128 in a prompt: 16-row tasks were too few for the
  // F16 weight panels, 7.5 -> 3.9 ms a call of 512 tokens).
  const int64_t head_chunk = s.batch >= 2 * st.pool->size() ? s.m : chunk;
  const int64_t chunks_per_b = (s.m + head_chunk - 1) / head_chunk;
  st.pool->parallel_for(s.batch * chunks_per_b, [&](int64_t task, int) {
    const int64_t b = task / chunks_per_b, c = task % chunks_per_b;
    const int64_t r0 = c * head_chunk, r1 = std::min(s.m, r0 + head_chunk);
    float* yb = reinterpret_cast<float*>(y.data + b * (s.batch == 1 ? 0 : y.desc.nb[1]));
    kernel.fn(s.k, w.data + b * w.desc.nb[2], size_t(w.desc.nb[1]), r0, r1, xq + size_t(b * s.n) * s.x_row_bytes,
              s.x_row_bytes, s.n, yb, y_stride);
  });
}

}  // namespace

void bind_matmul(CompiledOp& op, const Context& context, int64_t) {
  expect_arity(op, 2, 1);
  const Tensor &w = *op.in[0], &x = *op.in[1], &y = *op.out[0];
  if (w.desc.storage != Storage::WEIGHT) op_error(op, "the first operand must be a weight");
  expect_type(op, x, TensorType::F32);
  expect_type(op, y, TensorType::F32);
  if (w.desc.ne[3] != 1) op_error(op, "weights have at most 3 dimensions");
  const MatmulShape s = shape_of(op);
  if (s.batch == 1) {
    if (x.desc.ne[0] != s.k) op_error(op, "x rows have " + std::to_string(x.desc.ne[0]) + " values, W rows " + std::to_string(s.k));
    expect_ne(op, y, {s.m, x.desc.ne[1], x.desc.ne[2], x.desc.ne[3]});
    // The kernel writes y rows at one stride: the flattened rows must be evenly spaced.
    if ((y.desc.ne[2] > 1 && y.desc.nb[2] != y.desc.nb[1] * y.desc.ne[1]) ||
        (y.desc.ne[3] > 1 && y.desc.nb[3] != y.desc.nb[2] * y.desc.ne[2]))
      op_error(op, "y rows must be evenly spaced");
  } else {
    expect_ne(op, x, {s.k, s.batch, x.desc.ne[2], 1});
    expect_ne(op, y, {s.m, s.batch, x.desc.ne[2], 1});
  }
  if (s.x_row_bytes == 0) op_error(op, "row length is not a whole number of blocks");
  matmul_kernel(w.desc.type);  // throws UNSUPPORTED for a type without kernels
  op.shared_scratch = size_t(s.batch * s.n) * matmul_activation_stride(w.desc.type, s.k);
  op.run = run_matmul;
}

}  // namespace deepmla::ops
