// The rope op (math in deepmla/rope.hpp) and the KV cache stores.
#include <vector>

#include "deepmla/rope.hpp"
#include "ops/ops.hpp"

namespace deepmla::ops {

namespace {

RopeParams rope_params(const CompiledOp& op) {
  RopeParams p;
  p.n_dims = int(param(op, "nDims"));
  p.freq_base = param(op, "freqBase");
  p.freq_scale = param(op, "freqScale");
  p.ext_factor = param(op, "extFactor");
  p.attn_factor = param(op, "attnFactor");
  p.n_ctx_orig = param(op, "nCtxOrig");
  p.beta_fast = param(op, "betaFast");
  p.beta_slow = param(op, "betaSlow");
  return p;
}

void run_rope(const CompiledOp& op, ExecState& s) {
  const Tensor &x = *op.in[0], &pos = *op.in[1], &y = *op.out[0];
  const Rope rope(rope_params(op));
  const int32_t* positions = pos.ptr<int32_t>();
  const int64_t n_head = x.desc.ne[1], n_tokens = x.desc.ne[2];
  s.pool->parallel_for(n_tokens, [&](int64_t t, int) {
    // One table of angles per token serves all its heads.
    std::vector<float> cos_sin(size_t(x.desc.ne[0]));
    rope.angles(positions[t], cos_sin.data());
    for (int64_t h = 0; h < n_head; ++h) rope.apply(cos_sin.data(), x.ptr<float>(h, t), y.ptr<float>(h, t));
  });
}

// Rows of src go to cache rows n_past + t (and head h), quantized to the cache type.
void run_kv_store(const CompiledOp& op, ExecState& s) {
  const Tensor &src = *op.in[0], &dst = *op.out[0];
  const TypeTraits& t = type_traits(dst.desc.type);
  const int64_t n_head = src.desc.ne[1], n_tokens = src.desc.ne[2];
  s.pool->parallel_for(n_tokens * n_head, [&](int64_t task, int) {
    const int64_t tok = task / n_head, h = task % n_head;
    t.quantize_row(src.ptr<float>(h, tok), dst.ptr<uint8_t>(h, s.n_past + tok), src.desc.ne[0]);
  });
}

// The V^T cache of mla = 1: element (c, slot) at row c, column slot.
void run_kv_store_transposed(const CompiledOp& op, ExecState& s) {
  const Tensor &src = *op.in[0], &dst = *op.out[0];
  const bool bf16 = dst.desc.type == TensorType::BF16;
  const int64_t n_channels = src.desc.ne[0], n_tokens = src.desc.ne[1];
  s.pool->parallel_for(n_tokens, [&](int64_t tok, int) {
    const float* row = src.ptr<float>(tok);
    for (int64_t c = 0; c < n_channels; ++c) {
      uint16_t* out = dst.ptr<uint16_t>(c) + s.n_past + tok;
      *out = bf16 ? fp32_to_bf16(row[c]) : fp32_to_fp16(row[c]);
    }
  });
}

}  // namespace

void bind_rope(CompiledOp& op, const Context&, int64_t n_tokens) {
  expect_arity(op, 2, 1);
  const Tensor &x = *op.in[0], &pos = *op.in[1], &y = *op.out[0];
  expect_type(op, x, TensorType::F32);
  expect_type(op, y, TensorType::F32);
  expect_type(op, pos, TensorType::I32);
  // Any rows of the micro-batch (the last layer's queries may be its last row only), one
  // position each.
  const int64_t rows = x.desc.ne[2];
  if (rows < 1 || rows > n_tokens || x.desc.ne[3] != 1) op_error(op, "rope expects [nDims, nHead, rows <= nTokens]");
  expect_ne(op, pos, {rows, 1, 1, 1});
  expect_same_ne(op, x, y);
  const RopeParams p = rope_params(op);
  if (p.n_dims != x.desc.ne[0] || p.n_dims % 2 != 0) op_error(op, "nDims must equal the rotated width");
  if (!(p.freq_base > 0) || !(p.freq_scale > 0)) op_error(op, "freqBase and freqScale must be positive");
  op.run = run_rope;
}

void bind_kv_store(CompiledOp& op, const Context& context, int64_t n_tokens) {
  expect_arity(op, 1, 1);
  const Tensor &src = *op.in[0], &dst = *op.out[0];
  expect_type(op, src, TensorType::F32);
  if (dst.desc.storage != Storage::CACHE) op_error(op, "writes to a cache");
  expect_ne(op, src, {dst.desc.ne[0], dst.desc.ne[1], n_tokens, 1});
  expect_ne(op, dst, {src.desc.ne[0], src.desc.ne[1], context.n_ctx(), 1});
  op.run = run_kv_store;
}

void bind_kv_store_transposed(CompiledOp& op, const Context& context, int64_t n_tokens) {
  expect_arity(op, 1, 1);
  const Tensor &src = *op.in[0], &dst = *op.out[0];
  expect_type(op, src, TensorType::F32);
  if (dst.desc.storage != Storage::CACHE) op_error(op, "writes to a cache");
  if (dst.desc.type != TensorType::F16 && dst.desc.type != TensorType::BF16) op_error(op, "a V^T cache is f16 or bf16");
  expect_ne(op, src, {src.desc.ne[0], n_tokens, 1, 1});
  expect_ne(op, dst, {context.n_ctx(), src.desc.ne[0], 1, 1});
  op.run = run_kv_store_transposed;
}

}  // namespace deepmla::ops
