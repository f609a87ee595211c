// Mixture of experts (DESIGN.md "MoE and the rest of a block").
// moe_route: router logits -> chosen experts and their weights per token.
// moe_ffn: the routed experts' SwiGLU FFNs, only the chosen experts touched, tokens
// grouped by expert so each expert's weights stream once per micro-batch.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "deepmla/kernels.hpp"
#include "ops/ops.hpp"

namespace deepmla::ops {

namespace {

enum Gating { SOFTMAX = 1, SIGMOID = 2 };

void run_moe_route(const CompiledOp& op, ExecState& st) {
  const Tensor& logits = *op.in[0];
  const Tensor* bias = op.in.size() > 1 ? op.in[1] : nullptr;
  const Tensor &ids = *op.out[0], &weights = *op.out[1];
  const int gating = int(param(op, "gating"));
  const int64_t n_expert = logits.desc.ne[0], n_used = ids.desc.ne[0];
  const bool norm = param(op, "norm") != 0;
  const float scale = float(param(op, "scale"));
  const int64_t n_group = int64_t(param_or(op, "nGroup", 0)), n_group_used = int64_t(param_or(op, "nGroupUsed", 0));
  st.pool->parallel_for(logits.desc.ne[1], [&](int64_t t, int) {
    const float* l = logits.ptr<float>(t);
    std::vector<float> prob(static_cast<size_t>(n_expert)), score(static_cast<size_t>(n_expert));
    if (gating == SOFTMAX) {
      const float mx = *std::max_element(l, l + n_expert);
      double sum = 0;
      for (int64_t e = 0; e < n_expert; ++e) sum += prob[size_t(e)] = std::exp(l[e] - mx);
      for (float& p : prob) p = float(p / sum);
    } else {
      for (int64_t e = 0; e < n_expert; ++e) prob[size_t(e)] = 1.0f / (1.0f + std::exp(-l[e]));
    }
    // The bias (exp_probs_b) steers the choice only; weights come from the unbiased scores.
    for (int64_t e = 0; e < n_expert; ++e) score[size_t(e)] = prob[size_t(e)] + (bias ? bias->ptr<float>()[e] : 0.0f);
    if (n_group > 1) {
      // Group-limited routing: rank groups by the sum of their top-2 scores (sigmoid, V3)
      // or their best score (softmax, V2), keep the best n_group_used groups.
      const int64_t per_group = n_expert / n_group;
      std::vector<float> group_score(static_cast<size_t>(n_group));
      for (int64_t g = 0; g < n_group; ++g) {
        std::vector<float> s(score.begin() + g * per_group, score.begin() + (g + 1) * per_group);
        std::sort(s.begin(), s.end(), std::greater<float>());
        group_score[size_t(g)] = gating == SIGMOID ? s[0] + (s.size() > 1 ? s[1] : 0.0f) : s[0];
      }
      std::vector<int64_t> order(static_cast<size_t>(n_group));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return group_score[size_t(a)] > group_score[size_t(b)]; });
      for (int64_t k = n_group_used; k < n_group; ++k)
        for (int64_t e = order[size_t(k)] * per_group; e < (order[size_t(k)] + 1) * per_group; ++e)
          score[size_t(e)] = -std::numeric_limits<float>::infinity();
    }
    std::vector<int64_t> order(static_cast<size_t>(n_expert));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + n_used, order.end(), [&](int64_t a, int64_t b) {
      return score[size_t(a)] > score[size_t(b)] || (score[size_t(a)] == score[size_t(b)] && a < b);
    });
    int32_t* id = ids.ptr<int32_t>(t);
    float* w = weights.ptr<float>(t);
    double sum = 0;
    for (int64_t k = 0; k < n_used; ++k) {
      id[k] = int32_t(order[size_t(k)]);
      w[k] = prob[size_t(order[size_t(k)])];
      sum += w[k];
    }
    for (int64_t k = 0; k < n_used; ++k) w[k] = float((norm ? w[k] / sum : w[k]) * scale);
  });
}

// Scratch layout of moe_ffn, computed the same way at bind and at run.
struct MoeLayout {
  int64_t d, f, n_expert, n_used, n_tokens, slots;
  size_t xq_row, hq_row;
  size_t xq, xg, gate, up, hq, down, total;
};

MoeLayout moe_layout(const CompiledOp& op) {
  const Tensor &x = *op.in[0], &ids = *op.in[1], &gate = *op.in[3], &up = *op.in[4], &down = *op.in[5];
  MoeLayout l;
  l.d = x.desc.ne[0];
  l.f = gate.desc.ne[1];
  l.n_expert = gate.desc.ne[2];
  l.n_used = ids.desc.ne[0];
  l.n_tokens = x.desc.ne[1];
  l.slots = l.n_used * l.n_tokens;
  // Room for the activations of whichever variant runs (moe_kernels).
  l.xq_row = std::max(matmul_activation_stride(gate.desc.type, l.d), matmul_activation_stride(up.desc.type, l.d));
  l.hq_row = matmul_activation_stride(down.desc.type, l.f);
  auto align = [](size_t v) { return (v + 63) / 64 * 64; };
  size_t at = 0;
  l.xq = at, at += align(size_t(l.n_tokens) * l.xq_row);
  l.xg = at, at += align(size_t(l.slots) * l.xq_row);
  l.gate = at, at += align(size_t(l.slots * l.f) * 4);
  l.up = at, at += align(size_t(l.slots * l.f) * 4);
  l.hq = at, at += align(size_t(l.slots) * l.hq_row);
  l.down = at, at += align(size_t(l.slots * l.d) * 4);
  l.total = at;
  return l;
}

struct MoeKernels {
  const MatmulKernel *gate, *up, *down;
};

// Chosen by the micro-batch's size, not each expert's share of it: the activations are
// converted once for all experts. Gate and up read the same rows, so they fall back to
// the variants for any n together when their choices read different activations.
MoeKernels moe_kernels(const Tensor& gate, const Tensor& up, const Tensor& down, int64_t n_tokens) {
  MoeKernels k{&matmul_kernel(gate.desc.type, n_tokens), &matmul_kernel(up.desc.type, n_tokens),
               &matmul_kernel(down.desc.type, n_tokens)};
  if (k.gate->act_type != k.up->act_type) k.gate = &matmul_kernel(gate.desc.type), k.up = &matmul_kernel(up.desc.type);
  return k;
}

void run_moe_ffn(const CompiledOp& op, ExecState& st) {
  const Tensor &x = *op.in[0], &ids = *op.in[1], &weights = *op.in[2];
  const Tensor &gate = *op.in[3], &up = *op.in[4], &down = *op.in[5], &out = *op.out[0];
  const MoeLayout l = moe_layout(op);
  uint8_t* base = st.shared_scratch;
  const int n_threads = st.pool->size();

  // Slots grouped by expert: slot s = (token t, k) lands at position pos[s].
  std::vector<int64_t> count(static_cast<size_t>(l.n_expert + 1), 0), start(static_cast<size_t>(l.n_expert + 1), 0);
  std::vector<int64_t> pos(static_cast<size_t>(l.slots)), token_of(static_cast<size_t>(l.slots));
  for (int64_t t = 0; t < l.n_tokens; ++t)
    for (int64_t k = 0; k < l.n_used; ++k) {
      const int32_t e = ids.ptr<int32_t>(t)[k];
      if (e < 0 || e >= l.n_expert) fail(codes::kInternal, "expert id out of range");
      ++count[size_t(e)];
    }
  for (int64_t e = 0; e < l.n_expert; ++e) start[size_t(e) + 1] = start[size_t(e)] + count[size_t(e)];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t t = 0; t < l.n_tokens; ++t)
    for (int64_t k = 0; k < l.n_used; ++k) {
      const int64_t p = fill[size_t(ids.ptr<int32_t>(t)[k])]++;
      pos[size_t(t * l.n_used + k)] = p;
      token_of[size_t(p)] = t;
    }

  // 1. Convert each token's activations once, then gather them in expert order.
  const MoeKernels kernels = moe_kernels(gate, up, down, l.n_tokens);
  const QuantizeRowFn quantize_x = activation_quantizer(kernels.gate->act_type);
  const size_t x_bytes = row_bytes(kernels.gate->act_type, l.d);
  st.pool->parallel_for(l.n_tokens, [&](int64_t t, int) { quantize_x(x.ptr<float>(t), base + l.xq + size_t(t) * l.xq_row, l.d); });
  st.pool->parallel_for(l.slots, [&](int64_t p, int) {
    std::memcpy(base + l.xg + size_t(p) * l.xq_row, base + l.xq + size_t(token_of[size_t(p)]) * l.xq_row, x_bytes);
  });

  // 2. Gate and up projections, expert by expert, rows split across threads.
  struct Task {
    int64_t expert, r0, r1;
  };
  auto make_tasks = [&](int64_t rows) {
    std::vector<Task> tasks;
    for (int64_t e = 0; e < l.n_expert; ++e)
      if (count[size_t(e)] > 0) {
        // Few tokens (token generation): each thread one contiguous share of the expert.
        // More: a quarter of the rows, whole 32-row pairs of panels (the VNNI tile's
        // height), since each task recomputes its activations' block sums and waits for
        // its first panel from memory; there are experts enough to balance the threads.
        const int64_t chunk = count[size_t(e)] <= kGemvMaxN ? matmul_row_chunk(rows, count[size_t(e)], n_threads)
                                                            : ((rows + 3) / 4 + 31) / 32 * 32;
        for (int64_t r0 = 0; r0 < rows; r0 += chunk) tasks.push_back({e, r0, std::min(rows, r0 + chunk)});
      }
    return tasks;
  };
  const std::vector<Task> ffn_tasks = make_tasks(l.f);
  const MatmulKernel &k_gate = *kernels.gate, &k_up = *kernels.up;
  float* g = reinterpret_cast<float*>(base + l.gate);
  float* u = reinterpret_cast<float*>(base + l.up);
  st.pool->parallel_for(int64_t(ffn_tasks.size()), [&](int64_t i, int) {
    const Task& t = ffn_tasks[size_t(i)];
    const int64_t s0 = start[size_t(t.expert)], n = count[size_t(t.expert)];
    const uint8_t* xe = base + l.xg + size_t(s0) * l.xq_row;
    k_gate.fn(l.d, gate.data + t.expert * gate.desc.nb[2], size_t(gate.desc.nb[1]), t.r0, t.r1, xe, l.xq_row, n,
              g + s0 * l.f, size_t(l.f));
    k_up.fn(l.d, up.data + t.expert * up.desc.nb[2], size_t(up.desc.nb[1]), t.r0, t.r1, xe, l.xq_row, n,
            u + s0 * l.f, size_t(l.f));
  });

  // 3. SwiGLU, converted for the down projection.
  const QuantizeRowFn quantize_h = activation_quantizer(kernels.down->act_type);
  const SwigluRowFn swiglu = swiglu_kernel().fn;
  st.pool->parallel_for(l.slots, [&](int64_t p, int thread) {
    float* gp = g + p * l.f;
    swiglu(gp, u + p * l.f, gp, l.f);  // in place
    quantize_h(gp, base + l.hq + size_t(p) * l.hq_row, l.f);
  });

  // 4. Down projection.
  const std::vector<Task> down_tasks = make_tasks(l.d);
  const MatmulKernel& k_down = *kernels.down;
  float* dn = reinterpret_cast<float*>(base + l.down);
  st.pool->parallel_for(int64_t(down_tasks.size()), [&](int64_t i, int) {
    const Task& t = down_tasks[size_t(i)];
    const int64_t s0 = start[size_t(t.expert)], n = count[size_t(t.expert)];
    k_down.fn(l.f, down.data + t.expert * down.desc.nb[2], size_t(down.desc.nb[1]), t.r0, t.r1,
              base + l.hq + size_t(s0) * l.hq_row, l.hq_row, n, dn + s0 * l.d, size_t(l.d));
  });

  // 5. Weighted sum over each token's experts, in routing order (deterministic), with the
  // SIMD axpy: the scalar loop was ~4% of a 512-token micro-batch's MoE time (Zen5).
  const AttentionVecOps& vec = attention_vec_ops();
  st.pool->parallel_for(l.n_tokens, [&](int64_t t, int) {
    float* o = out.ptr<float>(t);
    const float* w = weights.ptr<float>(t);
    std::fill(o, o + l.d, 0.0f);
    for (int64_t k = 0; k < l.n_used; ++k) vec.axpy(o, w[k], dn + pos[size_t(t * l.n_used + k)] * l.d, l.d);
  });
}

}  // namespace

void bind_moe_route(CompiledOp& op, const Context&, int64_t n_tokens) {
  if (op.in.size() < 1 || op.in.size() > 2 || op.out.size() != 2) op_error(op, "expects logits[, bias] -> ids, weights");
  const Tensor &logits = *op.in[0], &ids = *op.out[0], &weights = *op.out[1];
  expect_type(op, logits, TensorType::F32);
  expect_type(op, ids, TensorType::I32);
  expect_type(op, weights, TensorType::F32);
  const int64_t n_expert = logits.desc.ne[0], n_used = ids.desc.ne[0], rows = logits.desc.ne[1];
  if (rows < 1 || rows > n_tokens) op_error(op, "logits must have 1..nTokens rows");
  expect_ne(op, logits, {n_expert, rows, 1, 1});
  expect_ne(op, ids, {n_used, rows, 1, 1});
  expect_ne(op, weights, {n_used, rows, 1, 1});
  if (op.in.size() == 2) {
    expect_type(op, *op.in[1], TensorType::F32);
    expect_ne(op, *op.in[1], {n_expert, 1, 1, 1});
  }
  const int gating = int(param(op, "gating"));
  if (gating != SOFTMAX && gating != SIGMOID) op_error(op, "gating is 1 (softmax) or 2 (sigmoid)");
  param(op, "norm");
  param(op, "scale");
  const int64_t n_group = int64_t(param_or(op, "nGroup", 0)), n_group_used = int64_t(param_or(op, "nGroupUsed", 0));
  if (n_used < 1 || n_used > n_expert) op_error(op, "expert_used_count must be in 1..expert_count");
  if (n_group > 1) {
    if (n_expert % n_group != 0) op_error(op, "expert_count is not a multiple of expert_group_count");
    if (n_group_used < 1 || n_group_used > n_group) op_error(op, "expert_group_used_count must be in 1..expert_group_count");
    if (n_group_used * (n_expert / n_group) < n_used) op_error(op, "the kept groups hold fewer experts than are used");
  }
  op.run = run_moe_route;
}

void bind_moe_ffn(CompiledOp& op, const Context&, int64_t n_tokens) {
  expect_arity(op, 6, 1);
  const Tensor &x = *op.in[0], &ids = *op.in[1], &weights = *op.in[2];
  const Tensor &gate = *op.in[3], &up = *op.in[4], &down = *op.in[5], &out = *op.out[0];
  for (const Tensor* w : {&gate, &up, &down})
    if (w->desc.storage != Storage::WEIGHT) op_error(op, "expert tensors must be weights");
  expect_type(op, x, TensorType::F32);
  expect_type(op, ids, TensorType::I32);
  expect_type(op, weights, TensorType::F32);
  expect_type(op, out, TensorType::F32);
  const int64_t d = x.desc.ne[0], f = gate.desc.ne[1], n_expert = gate.desc.ne[2];
  const int64_t rows = x.desc.ne[1];
  if (rows < 1 || rows > n_tokens) op_error(op, "x must have 1..nTokens rows");
  expect_ne(op, x, {d, rows, 1, 1});
  expect_ne(op, out, {d, rows, 1, 1});
  expect_ne(op, weights, ids.desc.ne);
  expect_ne(op, gate, {d, f, n_expert, 1});
  expect_ne(op, up, {d, f, n_expert, 1});
  expect_ne(op, down, {f, d, n_expert, 1});
  if (type_traits(gate.desc.type).vec_dot_type != type_traits(up.desc.type).vec_dot_type)
    op_error(op, "ffn_gate_exps and ffn_up_exps need the same activation type");
  for (const Tensor* w : {&gate, &up, &down}) matmul_kernel(w->desc.type);
  const MoeLayout l = moe_layout(op);
  if (row_bytes(type_traits(gate.desc.type).vec_dot_type, d) == 0 || row_bytes(type_traits(down.desc.type).vec_dot_type, f) == 0)
    op_error(op, "row length is not a whole number of blocks");
  op.shared_scratch = l.total;
  op.run = run_moe_ffn;
}

}  // namespace deepmla::ops
