// The three attention ops of DESIGN.md "MLA, concretely". All read keys from the cache
// (rows [0, n_past + n_tokens) are filled before they run) and mask causally: query t
// sees cache rows j <= n_past + queryOffset + t, the queries being the micro-batch's last
// rows (all of them, queryOffset 0, but in the last layer of a graph that needs the last
// token's logits only).
//  attn_absorbed     (mla 1, 2, and 3 for small batches): q [576, H, N] against the
//                    [c ; k_pe] rows; V is the first 512 of each row, or (flash = 0
//                    only) the V^T cache of mla 1.
//  attn_standard     (mla 0): per-head K [192, H, ctx] and V [128, H, ctx] caches.
//  attn_decompressed (mla 3 for large batches): the cached c is decompressed with
//                    attn_kv_b chunk by chunk, then standard attention per head.
// flash = 1: one pass with an online softmax, K*Q never materialised. flash = 0: K*Q is
// materialised for groups of heads whose K*Q buffer fits in `amb` MiB (0 = all heads).
// attn_absorbed with flash is flash MLA (seed 004): it runs the
// kernels of kernels/attention/ (one per K-cache type and ISA, flash_mla_scalar the
// reference). The other paths are scalar loops over attention_vec_ops()'s dot and axpy.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "deepmla/kernels.hpp"
#include "ops/ops.hpp"

namespace deepmla::ops {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kChunk = 32;  // cache rows converted at a time

// Online softmax state of one (query, head): running max, sum, and weighted values.
struct Online {
  float* m;
  float* l;
  float* acc;
  int64_t dv;
  void reset() {
    *m = kNegInf;
    *l = 0;
    std::fill(acc, acc + dv, 0.0f);
  }
  // Adds score s; returns the weight to give the value of this row.
  float add(float s) {
    if (s > *m) {
      const float r = std::exp(*m - s);
      *l *= r;
      for (int64_t c = 0; c < dv; ++c) acc[c] *= r;
      *m = s;
    }
    const float p = std::exp(s - *m);
    *l += p;
    return p;
  }
};

// Softmax in place over row[0, n); masked entries hold -inf.
void softmax(float* row, int64_t n) {
  float mx = kNegInf;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, row[j]);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += row[j] = row[j] == kNegInf ? 0.0f : std::exp(row[j] - mx);
  const float inv = float(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
}

void dequantize_row(const Tensor& t, int64_t i1, int64_t i2, float* dst) {
  type_traits(t.desc.type).dequantize_row(t.data + i1 * t.desc.nb[1] + i2 * t.desc.nb[2], dst, t.desc.ne[0]);
}

// Heads per K*Q group so the group's K*Q buffer stays within amb MiB (0: no limit).
int64_t heads_per_group(const CompiledOp& op, int64_t n_head, int64_t n_tokens, int64_t n_ctx) {
  const double amb = param_or(op, "amb", 0);
  if (amb <= 0) return n_head;
  const double per_head = double(n_tokens) * double(n_ctx) * 4;
  return std::clamp<int64_t>(int64_t(amb * 1048576.0 / per_head), 1, n_head);
}

bool flash(const CompiledOp& op) { return param(op, "flash") != 0; }

// ---- attn_absorbed ---------------------------------------------------------------------

struct Absorbed {
  const Tensor *q, *k, *vt;
  const Tensor* out;
  int64_t dq, dv, n_head, n_tokens;
  float scale;
};

Absorbed absorbed_of(const CompiledOp& op) {
  Absorbed a;
  a.q = op.in[0];
  a.k = op.in[1];
  a.vt = op.in.size() > 2 ? op.in[2] : nullptr;
  a.out = op.out[0];
  a.dq = a.q->desc.ne[0];
  a.dv = a.out->desc.ne[0];
  a.n_head = a.q->desc.ne[1];
  a.n_tokens = a.q->desc.ne[2];
  a.scale = float(param(op, "scale"));
  return a;
}

// Output row r of a split-KV task: merges the online softmax states its `splits` parts
// left at parts + s * state_floats, each laid out [m | l | acc] over `rows` rows.
void merge_splits(const AttentionVecOps& vec, const float* parts, int64_t splits, size_t state_floats, int64_t rows,
                  int64_t r, int64_t dv, float* o) {
  float mx = kNegInf;
  for (int64_t s = 0; s < splits; ++s) mx = std::max(mx, parts[size_t(s) * state_floats + size_t(r)]);
  std::fill(o, o + dv, 0.0f);
  float sum = 0;
  for (int64_t s = 0; s < splits; ++s) {
    const float* state = parts + size_t(s) * state_floats;
    const float l = state[rows + r];
    if (l == 0) continue;  // a split with no visible rows
    const float w = std::exp(state[r] - mx);
    sum += w * l;
    vec.axpy(o, w, state + 2 * rows + r * dv, dv);
  }
  const float inv = 1.0f / sum;
  for (int64_t c = 0; c < dv; ++c) o[c] *= inv;
}

// ---- attn_absorbed, flash, K cache only: the flash MLA kernels --------------------------
//
// Work is split into tasks of (a block of queries x a block of heads) x (a range of cache
// rows). All heads read the same cache rows, so a task takes many heads at once and the
// kernel converts each chunk of the cache once for all of them. Token generation has one
// query: the cache is split across threads (split-K) and the partial states merged, in
// split order, so the result does not depend on which thread ran what.

struct FlashPlan {
  int64_t head_block, query_block;  // a task's rows: query_block queries x head_block heads
  int64_t head_blocks, query_blocks;
  int64_t max_splits;               // KV splits per row block (at bind time: the bound)
  int64_t rows() const { return head_block * query_block; }
  int64_t row_tasks() const { return head_blocks * query_blocks; }
};

// Rows per task (DESIGN hint: 16-32): enough to reuse a converted chunk of K many times,
// few enough that the query rows and the chunk's scores stay in L1/L2.
constexpr int64_t kFlashRows = 32;
// Cache rows a split takes at least, so its fixed cost (queries, merge) stays small.
constexpr int64_t kMinSplitRows = 256;

FlashPlan flash_plan(int64_t n_head, int64_t n_tokens, int n_threads) {
  FlashPlan p;
  p.head_block = std::min<int64_t>(n_head, 16);
  p.head_blocks = (n_head + p.head_block - 1) / p.head_block;
  p.query_block = std::clamp<int64_t>(kFlashRows / p.head_block, 1, n_tokens);
  p.query_blocks = (n_tokens + p.query_block - 1) / p.query_block;
  const int64_t tasks = p.row_tasks();
  p.max_splits = tasks >= 2 * n_threads ? 1 : (4 * int64_t(n_threads) + tasks - 1) / tasks;
  return p;
}

int64_t flash_splits(const FlashPlan& p, int64_t n_kv) {
  return std::clamp<int64_t>(n_kv / kMinSplitRows, 1, p.max_splits);
}

size_t flash_state_floats(const FlashPlan& p, int64_t dv) { return size_t(p.rows()) * size_t(2 + dv); }

// Per thread: the kernel's scratch, then the state of a task's rows, their query row
// pointers and visible counts; each part 64-byte aligned.
struct FlashThreadLayout {
  size_t state, q, visible, total;
};

FlashThreadLayout flash_thread_layout(const FlashPlan& p, int64_t dq, int64_t dv) {
  auto align = [](size_t v) { return (v + 63) / 64 * 64; };
  FlashThreadLayout l;
  size_t at = align(flash_mla_scratch_bytes(dq, p.rows()));
  l.state = at, at += align(flash_state_floats(p, dv) * 4);
  l.q = at, at += align(size_t(p.rows()) * sizeof(float*));
  l.visible = at, at += align(size_t(p.rows()) * sizeof(int64_t));
  l.total = at;
  return l;
}

void run_absorbed_flash_mla(const CompiledOp& op, ExecState& st) {
  const Absorbed a = absorbed_of(op);
  const FlashMlaKernel& kernel = flash_mla_kernel(a.k->desc.type, a.dq, a.dv);
  const int64_t n_kv = st.n_past + a.n_tokens;
  const FlashPlan plan = flash_plan(a.n_head, a.n_tokens, st.pool->size());
  const int64_t splits = flash_splits(plan, n_kv);
  const int64_t per_split = ((n_kv + splits - 1) / splits + kFlashMlaChunk - 1) / kFlashMlaChunk * kFlashMlaChunk;
  const size_t state_floats = flash_state_floats(plan, a.dv);
  const FlashThreadLayout lay = flash_thread_layout(plan, a.dq, a.dv);
  float* parts = reinterpret_cast<float*>(st.shared_scratch);
  // Row r of row task rt: query t0 + r / hn, head h0 + r % hn.
  auto task_rows = [&](int64_t rt, int64_t* t0, int64_t* tn, int64_t* h0, int64_t* hn) {
    *t0 = rt / plan.head_blocks * plan.query_block;
    *tn = std::min(plan.query_block, a.n_tokens - *t0);
    *h0 = rt % plan.head_blocks * plan.head_block;
    *hn = std::min(plan.head_block, a.n_head - *h0);
  };
  st.pool->parallel_for(plan.row_tasks() * splits, [&](int64_t task, int thread) {
    const int64_t rt = task / splits, s = task % splits;
    int64_t t0, tn, h0, hn;
    task_rows(rt, &t0, &tn, &h0, &hn);
    const int64_t rows = tn * hn;
    uint8_t* scratch = st.scratch_for(thread);
    float* own_state = reinterpret_cast<float*>(scratch + lay.state);
    const float** q = reinterpret_cast<const float**>(scratch + lay.q);
    int64_t* visible = reinterpret_cast<int64_t*>(scratch + lay.visible);
    float* state = splits == 1 ? own_state : parts + size_t(task) * state_floats;
    float* m = state;
    float* l = m + rows;
    float* acc = l + rows;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t t = t0 + r / hn, h = h0 + r % hn;
      q[r] = a.q->ptr<float>(h, t);
      visible[r] = st.n_past + t + 1;
      m[r] = kNegInf;
      l[r] = 0;
    }
    std::fill(acc, acc + rows * a.dv, 0.0f);
    FlashMlaArgs args;
    args.dk = a.dq;
    args.dv = a.dv;
    args.k_type = a.k->desc.type;
    args.k = a.k->data;
    args.k_row_bytes = size_t(a.k->desc.nb[1]);
    args.j0 = std::min(n_kv, s * per_split);
    args.j1 = std::min(n_kv, (s + 1) * per_split);
    args.q = q;
    args.visible = visible;
    args.n_rows = rows;
    args.scale = a.scale;
    args.m = m;
    args.l = l;
    args.acc = acc;
    args.acc_stride = size_t(a.dv);
    args.scratch = scratch;
    if (args.j0 < args.j1) kernel.fn(args);
    if (splits > 1) return;
    for (int64_t r = 0; r < rows; ++r) {
      float* o = a.out->ptr<float>(h0 + r % hn, t0 + r / hn);
      const float inv = 1.0f / l[r];
      for (int64_t c = 0; c < a.dv; ++c) o[c] = acc[r * a.dv + c] * inv;
    }
  });
  if (splits == 1) return;
  const AttentionVecOps& vec = attention_vec_ops();
  st.pool->parallel_for(a.n_tokens * a.n_head, [&](int64_t task, int) {
    const int64_t t = task / a.n_head, h = task % a.n_head;
    const int64_t rt = t / plan.query_block * plan.head_blocks + h / plan.head_block;
    int64_t t0, tn, h0, hn;
    task_rows(rt, &t0, &tn, &h0, &hn);
    merge_splits(vec, parts + size_t(rt * splits) * state_floats, splits, state_floats, tn * hn, (t - t0) * hn + (h - h0),
                 a.dv, a.out->ptr<float>(h, t));
  });
}

void run_absorbed_kq(const CompiledOp& op, ExecState& st) {
  const AttentionVecOps& vec = attention_vec_ops();
  const Absorbed a = absorbed_of(op);
  const int64_t n_kv = st.n_past + a.n_tokens;
  const int64_t group = heads_per_group(op, a.n_head, a.n_tokens, st.n_ctx);
  float* kf = reinterpret_cast<float*>(st.shared_scratch);
  float* kq = kf + size_t(st.n_ctx * a.dq);
  const int64_t rows_chunk = chunk_size(n_kv, st.pool->size(), kChunk);
  st.pool->parallel_for((n_kv + rows_chunk - 1) / rows_chunk, [&](int64_t task, int) {
    for (int64_t j = task * rows_chunk; j < std::min(n_kv, (task + 1) * rows_chunk); ++j) dequantize_row(*a.k, j, 0, kf + j * a.dq);
  });
  for (int64_t h0 = 0; h0 < a.n_head; h0 += group) {
    const int64_t hn = std::min(group, a.n_head - h0);
    st.pool->parallel_for(hn * a.n_tokens, [&](int64_t task, int) {
      const int64_t h = h0 + task / a.n_tokens, t = task % a.n_tokens;
      float* row = kq + size_t(task) * size_t(st.n_ctx);
      const float* qh = a.q->ptr<float>(h, t);
      for (int64_t j = 0; j < n_kv; ++j) row[j] = j <= st.n_past + t ? vec.dot(qh, kf + j * a.dq, a.dq) * a.scale : kNegInf;
      softmax(row, n_kv);
    });
    if (!a.vt) {
      st.pool->parallel_for(hn * a.n_tokens, [&](int64_t task, int) {
        const int64_t h = h0 + task / a.n_tokens, t = task % a.n_tokens;
        const float* p = kq + size_t(task) * size_t(st.n_ctx);
        float* o = a.out->ptr<float>(h, t);
        std::fill(o, o + a.dv, 0.0f);
        for (int64_t j = 0; j < n_kv; ++j)
          if (p[j] != 0) vec.axpy(o, p[j], kf + j * a.dq, a.dv);
      });
      continue;
    }
    // V^T rows are channels: convert each once and use it for every (head, query).
    const TypeTraits& vtt = type_traits(a.vt->desc.type);
    const int64_t channel_chunk = chunk_size(a.dv, st.pool->size(), 8);
    st.pool->parallel_for((a.dv + channel_chunk - 1) / channel_chunk, [&](int64_t task, int thread) {
      float* seg = reinterpret_cast<float*>(st.scratch_for(thread));
      for (int64_t c = task * channel_chunk; c < std::min(a.dv, (task + 1) * channel_chunk); ++c) {
        vtt.dequantize_row(a.vt->data + c * a.vt->desc.nb[1], seg, n_kv);
        // Only the query's visible rows: the masked tail is zero, and a dot over the whole
        // n_kv would group the sum by the micro-batch's length, so one call would differ
        // from two calls over the same tokens.
        for (int64_t r = 0; r < hn * a.n_tokens; ++r) {
          const int64_t t = r % a.n_tokens;
          a.out->ptr<float>(h0 + r / a.n_tokens, t)[c] = vec.dot(kq + size_t(r) * size_t(st.n_ctx), seg, st.n_past + t + 1);
        }
      }
    });
  }
}

// ---- attn_standard ---------------------------------------------------------------------

struct Standard {
  const Tensor *q, *k, *v, *out;
  int64_t dq, dv, n_head, n_tokens;
  float scale;
};

Standard standard_of(const CompiledOp& op) {
  Standard s{op.in[0], op.in[1], op.in[2], op.out[0], 0, 0, 0, 0, 0};
  s.dq = s.q->desc.ne[0];
  s.dv = s.out->desc.ne[0];
  s.n_head = s.q->desc.ne[1];
  s.n_tokens = s.q->desc.ne[2];
  s.scale = float(param(op, "scale"));
  return s;
}

void run_standard_flash(const CompiledOp& op, ExecState& st) {
  const AttentionVecOps& vec = attention_vec_ops();
  const Standard a = standard_of(op);
  st.pool->parallel_for(a.n_tokens * a.n_head, [&](int64_t task, int thread) {
    const int64_t t = task / a.n_head, h = task % a.n_head;
    float* kbuf = reinterpret_cast<float*>(st.scratch_for(thread));
    float* vbuf = kbuf + a.dq;
    float* acc = vbuf + a.dv;
    float m, l;
    Online o{&m, &l, acc, a.dv};
    o.reset();
    const float* qh = a.q->ptr<float>(h, t);
    for (int64_t j = 0; j <= st.n_past + t; ++j) {
      dequantize_row(*a.k, h, j, kbuf);
      const float p = o.add(vec.dot(qh, kbuf, a.dq) * a.scale);
      dequantize_row(*a.v, h, j, vbuf);
      vec.axpy(acc, p, vbuf, a.dv);
    }
    float* out = a.out->ptr<float>(h, t);
    for (int64_t c = 0; c < a.dv; ++c) out[c] = acc[c] / l;
  });
}

void run_standard_kq(const CompiledOp& op, ExecState& st) {
  const AttentionVecOps& vec = attention_vec_ops();
  const Standard a = standard_of(op);
  const int64_t n_kv = st.n_past + a.n_tokens;
  const int64_t group = heads_per_group(op, a.n_head, a.n_tokens, st.n_ctx);
  float* kq = reinterpret_cast<float*>(st.shared_scratch);
  for (int64_t h0 = 0; h0 < a.n_head; h0 += group) {
    const int64_t hn = std::min(group, a.n_head - h0);
    st.pool->parallel_for(hn * a.n_tokens, [&](int64_t task, int thread) {
      const int64_t h = h0 + task / a.n_tokens, t = task % a.n_tokens;
      float* kbuf = reinterpret_cast<float*>(st.scratch_for(thread));
      float* row = kq + size_t(task) * size_t(st.n_ctx);
      const float* qh = a.q->ptr<float>(h, t);
      for (int64_t j = 0; j < n_kv; ++j) {
        if (j > st.n_past + t) {
          row[j] = kNegInf;
          continue;
        }
        dequantize_row(*a.k, h, j, kbuf);
        row[j] = vec.dot(qh, kbuf, a.dq) * a.scale;
      }
      softmax(row, n_kv);
    });
    st.pool->parallel_for(hn * a.n_tokens, [&](int64_t task, int thread) {
      const int64_t h = h0 + task / a.n_tokens, t = task % a.n_tokens;
      float* vbuf = reinterpret_cast<float*>(st.scratch_for(thread));
      const float* p = kq + size_t(task) * size_t(st.n_ctx);
      float* out = a.out->ptr<float>(h, t);
      std::fill(out, out + a.dv, 0.0f);
      for (int64_t j = 0; j < n_kv; ++j) {
        if (p[j] == 0) continue;
        dequantize_row(*a.v, h, j, vbuf);
        vec.axpy(out, p[j], vbuf, a.dv);
      }
    });
  }
}

// ---- attn_decompressed -----------------------------------------------------------------

struct Decompressed {
  const Tensor *q, *k, *kv_b, *out;
  int64_t dq, dv, nope, rope, kv_lora, n_head, n_tokens;
  size_t cq_row;  // bytes of one c row converted for kv_b's kernel
  float scale;
};

Decompressed decompressed_of(const CompiledOp& op) {
  Decompressed d{op.in[0], op.in[1], op.in[2], op.out[0], 0, 0, 0, 0, 0, 0, 0, 0, 0};
  d.dq = d.q->desc.ne[0];
  d.dv = d.out->desc.ne[0];
  d.kv_lora = d.kv_b->desc.ne[0];
  d.rope = d.k->desc.ne[0] - d.kv_lora;
  d.nope = d.dq - d.rope;
  d.n_head = d.q->desc.ne[1];
  d.n_tokens = d.q->desc.ne[2];
  d.cq_row = row_bytes(type_traits(d.kv_b->desc.type).vec_dot_type, d.kv_lora);
  d.scale = float(param(op, "scale"));
  return d;
}

// Score of query (h, t) against decompressed key row kd (nope values) and cached k_pe.
inline float decompressed_score(const AttentionVecOps& vec, const Decompressed& d, int64_t h, int64_t t, const float* kd, const float* k_pe) {
  const float* qh = d.q->ptr<float>(h, t);
  return (vec.dot(qh, kd, d.nope) + vec.dot(qh + d.nope, k_pe, d.rope)) * d.scale;
}

// Flash over the decompressed cache, chunk by chunk of cache rows: the chunk's c rows are
// converted once for all heads (kv_b's activation type; a Q8_0 cache already is Q8_0 and
// is read in place), then each head decompresses them with its rows of kv_b and adds the
// chunk to the online softmax states of blocks of its queries: with the decompressed
// flash kernel (kernels.hpp; AVX2, AVX512), which reads kv_b's output and k_pe in place, or
// else with the flash MLA kernel over [v ; k_nope ; k_pe] rows copied out of them (F32
// rows, scores over [k_nope ; k_pe], V the first dv values). The states of every
// (head, query) live in shared scratch.
constexpr int64_t kDecompressedQueries = 64;  // query rows per kernel call
static_assert(kDecompressedQueries <= kDecompressedFlashRows, "the decompressed flash takes a whole query block");
// Cache rows per chunk: the decompression is a GEMM over this many rows (panels of kv_b
// are packed once per chunk), and a chunk's rows (320 floats each) stay in L2.
constexpr int64_t kDecompressedChunk = 256;

struct DecompressedFlashLayout {
  int64_t row;  // floats per [v ; k_nope ; k_pe] row
  // shared: converted c rows, f32 k_pe rows, every (head, query)'s m, l and acc
  size_t cq, k_pe, m, l, acc, shared;
  // per thread: a dequantized cache row, decompressed rows, kernel arguments and scratch
  size_t cf, kvh, rows, q, visible, kernel, thread;
};

// Whether cache rows can be kv_b's activations as they are (no conversion).
bool cache_rows_are_activations(const Decompressed& d) {
  return d.k->desc.type == TensorType::Q8_0 && type_traits(d.kv_b->desc.type).vec_dot_type == TensorType::Q8_0;
}

DecompressedFlashLayout decompressed_flash_layout(const Decompressed& d, int64_t n_tokens) {
  auto align = [](size_t v) { return (v + 63) / 64 * 64; };
  DecompressedFlashLayout l;
  l.row = d.dv + d.nope + d.rope;
  const int64_t qb = std::min(n_tokens, kDecompressedQueries);
  const int64_t states = d.n_head * n_tokens;
  size_t at = 0;
  l.cq = at, at += cache_rows_are_activations(d) ? 0 : align(size_t(kDecompressedChunk) * d.cq_row);
  l.k_pe = at, at += align(size_t(kDecompressedChunk * d.rope) * 4);
  l.m = at, at += align(size_t(states) * 4);
  l.l = at, at += align(size_t(states) * 4);
  l.acc = at, at += align(size_t(states * d.dv) * 4);
  l.shared = at;
  at = 0;
  l.cf = at, at += align(size_t(d.k->desc.ne[0]) * 4);
  l.kvh = at, at += align(size_t(kDecompressedChunk * (d.nope + d.dv)) * 4);
  // Room for either path, so the layout does not depend on the ISA (which tests cap).
  l.rows = at, at += align(size_t(kDecompressedChunk * l.row) * 4);
  l.q = at, at += align(size_t(qb) * sizeof(float*));
  l.visible = at, at += align(size_t(qb) * sizeof(int64_t));
  l.kernel = at, at += align(std::max(flash_mla_scratch_bytes(l.row, qb), decompressed_flash_scratch_bytes(d.nope + d.rope, d.dv)));
  l.thread = at;
  return l;
}

void run_decompressed_flash(const CompiledOp& op, ExecState& st) {
  const Decompressed d = decompressed_of(op);
  const DecompressedFlashLayout lay = decompressed_flash_layout(d, d.n_tokens);
  const int64_t n_kv = st.n_past + d.n_tokens, width = d.nope + d.dv;
  const bool in_place = cache_rows_are_activations(d);
  const QuantizeRowFn convert = activation_quantizer(type_traits(d.kv_b->desc.type).vec_dot_type);
  const MatmulKernel& kernel = matmul_kernel(d.kv_b->desc.type);
  const FlashMlaKernel& flash = flash_mla_kernel(TensorType::F32, lay.row, d.dv, d.dv);
  const DecompressedFlashFn in_place_flash = decompressed_flash_kernel(d.nope, d.rope, d.dv, d.k->desc.type);
  uint8_t* shared = st.shared_scratch;
  float* k_pe = reinterpret_cast<float*>(shared + lay.k_pe);
  float* m = reinterpret_cast<float*>(shared + lay.m);
  float* l = reinterpret_cast<float*>(shared + lay.l);
  float* acc = reinterpret_cast<float*>(shared + lay.acc);
  std::fill(m, m + d.n_head * d.n_tokens, kNegInf);
  std::fill(l, l + d.n_head * d.n_tokens, 0.0f);
  std::fill(acc, acc + d.n_head * d.n_tokens * d.dv, 0.0f);
  const size_t k_row_bytes = size_t(d.k->desc.nb[1]);
  for (int64_t c0 = 0; c0 < n_kv; c0 += kDecompressedChunk) {
    const int64_t n = std::min(kDecompressedChunk, n_kv - c0);
    // 1. The chunk's c rows for kv_b's kernel and its k_pe rows in f32, once for all heads.
    st.pool->parallel_for(n, [&](int64_t j, int thread) {
      float* row = reinterpret_cast<float*>(st.scratch_for(thread) + lay.cf);
      dequantize_row(*d.k, c0 + j, 0, row);
      if (!in_place) convert(row, shared + lay.cq + size_t(j) * d.cq_row, d.kv_lora);
      std::memcpy(k_pe + j * d.rope, row + d.kv_lora, size_t(d.rope) * 4);
    });
    const uint8_t* cq = in_place ? d.k->data + size_t(c0) * k_row_bytes : shared + lay.cq;
    const size_t cq_stride = in_place ? k_row_bytes : d.cq_row;
    // 2. Per head: decompress, then the flash kernel over the queries that see the chunk.
    st.pool->parallel_for(d.n_head, [&](int64_t h, int thread) {
      uint8_t* scratch = st.scratch_for(thread);
      float* kvh = reinterpret_cast<float*>(scratch + lay.kvh);
      float* rows = reinterpret_cast<float*>(scratch + lay.rows);
      const float** q = reinterpret_cast<const float**>(scratch + lay.q);
      int64_t* visible = reinterpret_cast<int64_t*>(scratch + lay.visible);
      const uint8_t* w = d.kv_b->data + h * width * d.kv_b->desc.nb[1];
      kernel.fn(d.kv_lora, w, size_t(d.kv_b->desc.nb[1]), 0, width, cq, cq_stride, n, kvh, size_t(width));
      const int64_t s0 = h * d.n_tokens;  // this head's states
      // Blocks of the queries that see this chunk (t < c0 - n_past see none of it).
      auto each_query_block = [&](auto&& run) {
        for (int64_t t0 = std::max<int64_t>(0, c0 - st.n_past); t0 < d.n_tokens; t0 += kDecompressedQueries) {
          const int64_t tn = std::min(kDecompressedQueries, d.n_tokens - t0);
          for (int64_t r = 0; r < tn; ++r) {
            q[r] = d.q->ptr<float>(h, t0 + r);
            visible[r] = st.n_past + t0 + r + 1 - c0;  // rows of this chunk, from 0
          }
          run(t0, tn);
        }
      };
      if (in_place_flash) {
        DecompressedFlashArgs args;
        args.nope = d.nope;
        args.rope = d.rope;
        args.dv = d.dv;
        args.q = q;
        args.visible = visible;
        args.n_keys = n;
        args.kv = kvh;
        args.kv_stride = size_t(width);
        args.k_pe = k_pe;
        args.scale = d.scale;
        args.acc_stride = size_t(d.dv);
        args.scratch = scratch + lay.kernel;
        each_query_block([&](int64_t t0, int64_t tn) {
          args.n_rows = tn;
          args.m = m + s0 + t0;
          args.l = l + s0 + t0;
          args.acc = acc + (s0 + t0) * d.dv;
          in_place_flash(args);
        });
        return;
      }
      for (int64_t j = 0; j < n; ++j) {  // [v ; k_nope ; k_pe]
        float* row = rows + j * lay.row;
        std::memcpy(row, kvh + j * width + d.nope, size_t(d.dv) * 4);
        std::memcpy(row + d.dv, kvh + j * width, size_t(d.nope) * 4);
        std::memcpy(row + d.dv + d.nope, k_pe + j * d.rope, size_t(d.rope) * 4);
      }
      FlashMlaArgs args;
      args.dk = lay.row;
      args.dv = d.dv;
      args.k_type = TensorType::F32;
      args.k = reinterpret_cast<const uint8_t*>(rows);
      args.k_row_bytes = size_t(lay.row) * 4;
      args.k_skip = d.dv;
      args.q = q;
      args.visible = visible;
      args.scale = d.scale;
      args.acc_stride = size_t(d.dv);
      args.scratch = scratch + lay.kernel;
      each_query_block([&](int64_t t0, int64_t tn) {
        args.j0 = 0;
        args.j1 = n;
        args.n_rows = tn;
        args.m = m + s0 + t0;
        args.l = l + s0 + t0;
        args.acc = acc + (s0 + t0) * d.dv;
        flash.fn(args);
      });
    });
  }
  st.pool->parallel_for(d.n_head, [&](int64_t h, int) {
    for (int64_t t = 0; t < d.n_tokens; ++t) {
      float* out = d.out->ptr<float>(h, t);
      const float* a = acc + (h * d.n_tokens + t) * d.dv;
      const float inv = 1.0f / l[h * d.n_tokens + t];
      for (int64_t c = 0; c < d.dv; ++c) out[c] = a[c] * inv;
    }
  });
}

struct DecompressedKqLayout {
  size_t cq, k_pe, kvd, kq, total;
};

DecompressedKqLayout decompressed_kq_layout(const Decompressed& d, int64_t n_ctx, int64_t group) {
  auto align = [](size_t v) { return (v + 63) / 64 * 64; };
  DecompressedKqLayout l;
  size_t at = 0;
  l.cq = at, at += align(size_t(n_ctx) * d.cq_row);
  l.k_pe = at, at += align(size_t(n_ctx * d.rope) * 4);
  l.kvd = at, at += align(size_t(n_ctx * group * (d.nope + d.dv)) * 4);
  l.kq = at, at += align(size_t(group * d.n_tokens * n_ctx) * 4);
  l.total = at;
  return l;
}

void run_decompressed_kq(const CompiledOp& op, ExecState& st) {
  const AttentionVecOps& vec = attention_vec_ops();
  const Decompressed d = decompressed_of(op);
  const int64_t n_kv = st.n_past + d.n_tokens, width = d.nope + d.dv;
  const int64_t group = heads_per_group(op, d.n_head, d.n_tokens, st.n_ctx);
  const DecompressedKqLayout lay = decompressed_kq_layout(d, st.n_ctx, group);
  uint8_t* base = st.shared_scratch;
  float* k_pe = reinterpret_cast<float*>(base + lay.k_pe);
  float* kvd = reinterpret_cast<float*>(base + lay.kvd);
  float* kq = reinterpret_cast<float*>(base + lay.kq);
  const QuantizeRowFn convert = activation_quantizer(type_traits(d.kv_b->desc.type).vec_dot_type);
  const MatmulKernel& kernel = matmul_kernel(d.kv_b->desc.type);
  st.pool->parallel_for(n_kv, [&](int64_t j, int thread) {
    float* row = reinterpret_cast<float*>(st.scratch_for(thread));
    dequantize_row(*d.k, j, 0, row);
    convert(row, base + lay.cq + size_t(j) * d.cq_row, d.kv_lora);
    std::memcpy(k_pe + j * d.rope, row + d.kv_lora, size_t(d.rope) * 4);
  });
  for (int64_t h0 = 0; h0 < d.n_head; h0 += group) {
    const int64_t hn = std::min(group, d.n_head - h0), rows = hn * width;
    const int64_t chunk = chunk_size(rows, st.pool->size(), 16);
    st.pool->parallel_for((rows + chunk - 1) / chunk, [&](int64_t task, int) {
      kernel.fn(d.kv_lora, d.kv_b->data + h0 * width * d.kv_b->desc.nb[1], size_t(d.kv_b->desc.nb[1]), task * chunk,
                std::min(rows, (task + 1) * chunk), base + lay.cq, d.cq_row, n_kv, kvd, size_t(rows));
    });
    st.pool->parallel_for(hn * d.n_tokens, [&](int64_t task, int) {
      const int64_t hl = task / d.n_tokens, t = task % d.n_tokens;
      float* row = kq + size_t(task) * size_t(st.n_ctx);
      for (int64_t j = 0; j < n_kv; ++j)
        row[j] = j <= st.n_past + t ? decompressed_score(vec, d, h0 + hl, t, kvd + j * rows + hl * width, k_pe + j * d.rope) : kNegInf;
      softmax(row, n_kv);
      float* out = d.out->ptr<float>(h0 + hl, t);
      std::fill(out, out + d.dv, 0.0f);
      for (int64_t j = 0; j < n_kv; ++j)
        if (row[j] != 0) vec.axpy(out, row[j], kvd + j * rows + hl * width + d.nope, d.dv);
    });
  }
}

void check_cache_operand(const CompiledOp& op, const Tensor& t, const char* what) {
  if (t.desc.storage != Storage::CACHE) op_error(op, std::string(what) + " must be a cache view");
}

// Checks q and out; returns the query rows, the micro-batch's last ones: queryOffset (0 by
// default) rows come before them.
int64_t check_q_out(const CompiledOp& op, int64_t n_tokens) {
  const Tensor &q = *op.in[0], &out = *op.out[0];
  expect_type(op, q, TensorType::F32);
  expect_type(op, out, TensorType::F32);
  const double offset = param_or(op, "queryOffset", 0);
  const int64_t rows = q.desc.ne[2];
  if (!(offset >= 0) || offset != std::floor(offset) || double(rows) + offset != double(n_tokens) || rows < 1 ||
      q.desc.ne[3] != 1)
    op_error(op, "q must be [dq, nHead, nTokens - queryOffset]");
  if (out.desc.ne[1] != q.desc.ne[1] || out.desc.ne[2] != rows || out.desc.ne[3] != 1)
    op_error(op, "out must be [dv, nHead, rows of q]");
  if (!(param(op, "scale") > 0)) op_error(op, "scale must be positive");
  flash(op);
  return rows;
}

// Queries that are the micro-batch's last rows see the cache as a micro-batch of just
// them would after queryOffset more tokens: every run function's n_past + t is right.
template <void (*Run)(const CompiledOp&, ExecState&)>
void run_with_query_offset(const CompiledOp& op, ExecState& st) {
  ExecState shifted = st;
  shifted.n_past += int64_t(param_or(op, "queryOffset", 0));
  Run(op, shifted);
}

}  // namespace

void bind_attn_absorbed(CompiledOp& op, const Context& context, int64_t n_tokens) {
  if (op.in.size() < 2 || op.in.size() > 3 || op.out.size() != 1) op_error(op, "expects q, k[, vT] -> out");
  const int64_t rows = check_q_out(op, n_tokens);
  const Absorbed a = absorbed_of(op);
  check_cache_operand(op, *a.k, "k");
  expect_ne(op, *a.k, {a.dq, context.n_ctx(), 1, 1});
  if (a.dv > a.dq) op_error(op, "V (the first dv values of K) cannot be wider than K");
  if (a.vt) {
    check_cache_operand(op, *a.vt, "vT");
    if (a.vt->desc.type != TensorType::F16 && a.vt->desc.type != TensorType::BF16) op_error(op, "a V^T cache is f16 or bf16");
    expect_ne(op, *a.vt, {context.n_ctx(), a.dv, 1, 1});
  }
  const int n_threads = context.n_threads();
  if (flash(op)) {
    // Flash attention takes V from the K cache (seed 004: "kv^T: not used").
    if (a.vt) op_error(op, "flash attention reads V from the K cache: a V^T cache is for flash off");
    flash_mla_kernel(a.k->desc.type, a.dq, a.dv);  // UNSUPPORTED for other cache types
    const FlashPlan plan = flash_plan(a.n_head, rows, n_threads);
    op.shared_scratch = plan.max_splits > 1
                            ? size_t(plan.row_tasks() * plan.max_splits) * flash_state_floats(plan, a.dv) * 4
                            : 0;
    op.thread_scratch = flash_thread_layout(plan, a.dq, a.dv).total;
    op.run = run_with_query_offset<run_absorbed_flash_mla>;
  } else {
    const int64_t group = heads_per_group(op, a.n_head, rows, context.n_ctx());
    op.shared_scratch = size_t(context.n_ctx() * a.dq + group * rows * context.n_ctx()) * 4;
    op.thread_scratch = size_t(context.n_ctx()) * 4;
    op.run = run_with_query_offset<run_absorbed_kq>;
  }
}

void bind_attn_standard(CompiledOp& op, const Context& context, int64_t n_tokens) {
  expect_arity(op, 3, 1);
  const int64_t rows = check_q_out(op, n_tokens);
  const Standard a = standard_of(op);
  check_cache_operand(op, *a.k, "k");
  check_cache_operand(op, *a.v, "v");
  expect_ne(op, *a.k, {a.dq, a.n_head, context.n_ctx(), 1});
  expect_ne(op, *a.v, {a.dv, a.n_head, context.n_ctx(), 1});
  op.thread_scratch = size_t(a.dq + 2 * a.dv) * 4;
  if (flash(op)) {
    op.run = run_with_query_offset<run_standard_flash>;
  } else {
    op.shared_scratch = size_t(heads_per_group(op, a.n_head, rows, context.n_ctx()) * rows * context.n_ctx()) * 4;
    op.run = run_with_query_offset<run_standard_kq>;
  }
}

void bind_attn_decompressed(CompiledOp& op, const Context& context, int64_t n_tokens) {
  expect_arity(op, 3, 1);
  const int64_t rows = check_q_out(op, n_tokens);
  const Decompressed d = decompressed_of(op);
  check_cache_operand(op, *d.k, "k");
  if (d.kv_b->desc.storage != Storage::WEIGHT) op_error(op, "kv_b must be a weight");
  expect_ne(op, *d.k, {d.k->desc.ne[0], context.n_ctx(), 1, 1});
  if (d.rope <= 0 || d.nope <= 0) op_error(op, "cache rows must be kv_lora + rope wide and q nope + rope");
  expect_ne(op, *d.kv_b, {d.kv_lora, d.n_head * (d.nope + d.dv), 1, 1});
  if (d.cq_row == 0) op_error(op, "kv_lora_rank is not a whole number of blocks");
  matmul_kernel(d.kv_b->desc.type);
  if (flash(op)) {
    const DecompressedFlashLayout lay = decompressed_flash_layout(d, rows);
    op.shared_scratch = lay.shared;
    op.thread_scratch = lay.thread;
    op.run = run_with_query_offset<run_decompressed_flash>;
  } else {
    const int64_t group = heads_per_group(op, d.n_head, rows, context.n_ctx());
    op.shared_scratch = decompressed_kq_layout(d, context.n_ctx(), group).total;
    op.thread_scratch = size_t(d.k->desc.ne[0]) * 4;
    op.run = run_with_query_offset<run_decompressed_kq>;
  }
}

}  // namespace deepmla::ops
