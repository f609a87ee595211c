// Every flash MLA variant the machine can run, against flash_mla_scalar (the reference):
// random caches of each K-cache type, causal and random masks, odd lengths, n_kv from 1 to
// a few thousand, 1..64 query rows (heads x queries), split KV ranges merged as the op
// merges them, and states carried across calls. Also the attention vector ops.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "deepmla/error.hpp"
#include "deepmla/kernels.hpp"
#include "deepmla/types.hpp"
#include "formats/blocks.hpp"
#include "kernels/attention/layout.hpp"  // quantize_query_block
#include "test.hpp"

namespace {

using namespace deepmla;

using deepmla::test::Rng;

const TensorType kCacheTypes[] = {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q8_KV,
                                  TensorType::Q6_0};
constexpr int64_t kDk = 576, kDv = 512;  // DESIGN.md: kv_lora_rank 512 + rope 64

struct Cache {
  TensorType type;
  int64_t n;
  size_t row_bytes;
  std::vector<uint8_t> data;
  float vmax = 0;  // largest |value| of the dequantized rows' first kDv values
};

// Rows like a real [c ; k_pe] cache: c of norm-ish size 1, k_pe larger; some rows zero,
// some tiny, some 8x larger.
Cache random_cache(Rng& rng, TensorType type, int64_t n) {
  Cache c{type, n, row_bytes(type, kDk), {}};
  c.data.resize(c.row_bytes * size_t(n) + 64);
  std::vector<float> f(kDk), back(kDk);
  for (int64_t j = 0; j < n; ++j) {
    const float scale = j % 97 == 5 ? 0.0f : j % 31 == 7 ? 1e-3f : j % 13 == 3 ? 8.0f : 1.0f;
    for (int64_t i = 0; i < kDk; ++i) f[size_t(i)] = scale * rng.normal() * (i < kDv ? 1.0f : 3.0f);
    type_traits(type).quantize_row(f.data(), c.data.data() + size_t(j) * c.row_bytes, kDk);
    type_traits(type).dequantize_row(c.data.data() + size_t(j) * c.row_bytes, back.data(), kDk);
    for (int64_t i = 0; i < kDv; ++i) c.vmax = std::max(c.vmax, std::fabs(back[size_t(i)]));
  }
  return c;
}

struct States {
  int64_t rows;
  std::vector<float> m, l, acc;
  explicit States(int64_t r) : rows(r), m(size_t(r), -std::numeric_limits<float>::infinity()), l(size_t(r), 0.0f),
                               acc(size_t(r * (kDv + 3)), 0.0f) {}
};

// Runs a kernel over [j0, j1) in pieces of `piece` rows (0: one call), carrying states.
void run(const FlashMlaKernel& kernel, const Cache& c, const std::vector<const float*>& q,
         const std::vector<int64_t>& visible, float scale, int64_t j0, int64_t j1, int64_t piece, States& st) {
  const int64_t rows = int64_t(q.size());
  std::vector<uint8_t> scratch_mem(flash_mla_scratch_bytes(kDk, rows) + 64, 0xcd);
  uint8_t* scratch = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(scratch_mem.data()) + 63) / 64 * 64);
  for (int64_t a = j0; a < j1;) {
    const int64_t b = piece > 0 ? std::min(j1, a + piece) : j1;
    FlashMlaArgs args;
    args.dk = kDk;
    args.dv = kDv;
    args.k_type = c.type;
    args.k = c.data.data();
    args.k_row_bytes = c.row_bytes;
    args.j0 = a;
    args.j1 = b;
    args.q = q.data();
    args.visible = visible.data();
    args.n_rows = rows;
    args.scale = scale;
    args.m = st.m.data();
    args.l = st.l.data();
    args.acc = st.acc.data();
    args.acc_stride = kDv + 3;  // padding must stay untouched
    args.scratch = scratch;
    kernel.fn(args);
    a = b;
  }
}

// Merges split states as ops/attention.cpp does: weights e^(m_s - max m).
std::vector<float> merged_output(const std::vector<States>& parts, int64_t r) {
  float mx = -std::numeric_limits<float>::infinity();
  for (const States& p : parts) mx = std::max(mx, p.m[size_t(r)]);
  std::vector<double> o(kDv, 0.0);
  double sum = 0;
  for (const States& p : parts) {
    if (p.l[size_t(r)] == 0) continue;
    const double w = std::exp(double(p.m[size_t(r)]) - mx);
    sum += w * p.l[size_t(r)];
    for (int64_t c = 0; c < kDv; ++c) o[size_t(c)] += w * p.acc[size_t(r * (kDv + 3) + c)];
  }
  std::vector<float> out(kDv);
  for (int64_t c = 0; c < kDv; ++c) out[size_t(c)] = float(o[size_t(c)] / sum);
  return out;
}

struct Case {
  int64_t n_kv, rows, splits;
  bool causal;  // else random visible counts
  int64_t piece;
};

// out_tol: outputs within out_tol * the largest value; lse_tol: each split's log-sum-exp.
int compare(const FlashMlaKernel& kernel, const FlashMlaKernel& ref, Rng& rng, const Cache& c, const Case& k,
            double out_tol = 1e-4, double lse_tol = 1e-4) {
  std::vector<float> qmem(size_t(k.rows * kDk));
  for (float& v : qmem) v = rng.normal();
  std::vector<const float*> q(size_t(k.rows));
  std::vector<int64_t> visible(size_t(k.rows));
  for (int64_t r = 0; r < k.rows; ++r) {
    q[size_t(r)] = qmem.data() + r * kDk;
    // Causal: rows are (query, head) with 16 heads per query, the last query sees all.
    const int64_t queries = (k.rows + 15) / 16;
    visible[size_t(r)] = k.causal ? std::max<int64_t>(1, k.n_kv - (queries - 1 - r / 16)) : 1 + rng.below(k.n_kv);
  }
  const float scale = 0.1f;  // scores of a few units, like kq_scale = 1/sqrt(192) on real q
  const int64_t per = (k.n_kv + k.splits - 1) / k.splits;
  std::vector<States> want, got;
  for (int64_t s = 0; s < k.splits; ++s) {
    const int64_t j0 = std::min(k.n_kv, s * per), j1 = std::min(k.n_kv, (s + 1) * per);
    want.emplace_back(k.rows);
    got.emplace_back(k.rows);
    run(ref, c, q, visible, scale, j0, j1, 0, want.back());
    run(kernel, c, q, visible, scale, j0, j1, k.piece, got.back());
  }
  int bad = 0;
  // Softmax weights are within ~1e-5 relative of the reference (scores are sums of 576
  // products in another order, and e^x is a polynomial): outputs within 1e-4 of the
  // largest value.
  const double tol = out_tol * c.vmax + 1e-30;
  for (int64_t r = 0; r < k.rows; ++r) {
    const std::vector<float> w = merged_output(want, r), g = merged_output(got, r);
    for (int64_t ch = 0; ch < kDv; ++ch) {
      const double d = std::fabs(double(w[size_t(ch)]) - double(g[size_t(ch)]));
      if (!(d <= tol) && bad++ < 3)
        std::fprintf(stderr, "  %s %s n_kv=%ld rows=%ld splits=%ld causal=%d piece=%ld r=%ld c=%ld: got %.9g want %.9g\n",
                     kernel.name, type_name(c.type), long(k.n_kv), long(k.rows), long(k.splits), int(k.causal),
                     long(k.piece), long(r), long(ch), g[size_t(ch)], w[size_t(ch)]);
    }
    for (size_t s = 0; s < got.size(); ++s) {
      // The log-sum-exp of each split must agree too: the merge weighs splits by it.
      const States &a = want[s], &b = got[s];
      if ((a.l[size_t(r)] == 0) != (b.l[size_t(r)] == 0)) {
        if (bad++ < 3) std::fprintf(stderr, "  %s split %zu row %ld: empty in one only\n", kernel.name, s, long(r));
        continue;
      }
      if (a.l[size_t(r)] == 0) continue;
      const double lse_a = a.m[size_t(r)] + std::log(double(a.l[size_t(r)]));
      const double lse_b = b.m[size_t(r)] + std::log(double(b.l[size_t(r)]));
      if (!(std::fabs(lse_a - lse_b) <= lse_tol) && bad++ < 3)
        std::fprintf(stderr, "  %s split %zu row %ld: log-sum-exp %.9g want %.9g\n", kernel.name, s, long(r), lse_b,
                     lse_a);
      for (int64_t pad = kDv; pad < kDv + 3; ++pad)
        if (b.acc[size_t(r * (kDv + 3) + pad)] != 0 && bad++ < 3)
          std::fprintf(stderr, "  %s wrote past dv\n", kernel.name);
    }
  }
  return bad;
}

// The reference a variant is held to: the float scalar loop, or for a variant that
// quantizes its queries the scalar loop on those same queries.
FlashMlaKernel reference_for(const FlashMlaKernel& variant, const std::vector<FlashMlaKernel>& variants) {
  if (!variant.quantized_queries) return variants.front();
  return {variant.cache_type, Isa::SCALAR, "flash_mla_quantized_q_scalar", flash_mla_quantized_q_scalar, true};
}

// What a variant adds to the float variants' tolerance (a fraction of the largest value):
// bf16 weights round each P d to nearest even (8 significant bits), a relative error of at
// most 2^-8 per term, so an output moves by at most 2^-8 sum_j P_j |v_j| / sum_j P_j,
// which is at most 2^-8 vmax.
double weight_rounding(const FlashMlaKernel& variant) { return variant.bf16_weights ? std::ldexp(1.0, -8) : 0.0; }

}  // namespace

TEST(attention_registry_is_consistent) {
  std::set<std::string> names;
  for (TensorType type : kCacheTypes) {
    const std::vector<FlashMlaKernel> variants = flash_mla_kernels(type);
    CHECK(!variants.empty() && variants.front().isa == Isa::SCALAR);
    CHECK(std::string(variants.front().name) == "flash_mla_scalar");
    for (size_t v = 1; v < variants.size(); ++v) {
      CHECK(int(variants[v - 1].isa) <= int(variants[v].isa));
      // A symbol equals its file name: flash_mla_<type>_<isa>.
      std::string lower;
      for (char ch : std::string(type_name(type))) lower += char(std::tolower(static_cast<unsigned char>(ch)));
      CHECK(std::string(variants[v].name) == "flash_mla_" + lower + "_" + isa_name(variants[v].isa));
      CHECK(names.insert(variants[v].name).second);
    }
    CHECK(flash_mla_kernel(type, kDk, kDv).fn == variants.back().fn);
    CHECK(flash_mla_kernel(type, 40, 32).isa == Isa::SCALAR);  // shapes the SIMD loops do not take
    for (const FlashMlaKernel& kernel : variants) std::printf("  variant %s (%s)\n", kernel.name, type_name(type));
  }
  CHECK_THROWS_CODE(flash_mla_kernel(TensorType::I32, kDk, kDv), "UNSUPPORTED");
  set_isa_cap(Isa::SCALAR);
  CHECK(flash_mla_kernel(TensorType::Q8_0, kDk, kDv).isa == Isa::SCALAR);
  CHECK(attention_vec_ops().isa == Isa::SCALAR);
  clear_isa_cap();
}

TEST(attention_flash_mla_variants_match_scalar) {
  Rng rng(21);
  const Case cases[] = {
      {1, 1, 1, true, 0},      {1, 16, 1, true, 0},    {2, 3, 1, false, 0},    {31, 5, 1, true, 0},
      {32, 16, 1, true, 0},    {33, 17, 1, false, 0},  {100, 7, 3, false, 0},  {257, 16, 4, true, 0},
      {700, 32, 2, true, 96},  {1000, 64, 1, true, 0}, {1500, 2, 5, false, 0}, {3001, 16, 8, true, 0},
      {513, 48, 3, true, 33},  {64, 1, 7, false, 5},   {2048, 4, 1, false, 0},
  };
  for (TensorType type : kCacheTypes) {
    const std::vector<FlashMlaKernel> variants = flash_mla_kernels(type);
    for (const Case& k : cases) {
      const Cache c = random_cache(rng, type, k.n_kv);
      for (size_t v = 1; v < variants.size(); ++v)
        CHECK(compare(variants[v], reference_for(variants[v], variants), rng, c, k,
                      1e-4 + weight_rounding(variants[v])) == 0);
    }
  }
}

TEST(attention_quantized_q_reference_is_float_on_rounded_queries) {
  // The int8 variants' reference is float attention on the queries as they round them:
  // the same outputs as flash_mla_scalar given q8 * d / scale for q (to float rounding).
  Rng rng(25);
  for (TensorType type : {TensorType::Q8_0, TensorType::Q8_KV}) {
    const FlashMlaKernel quantized = {type, Isa::SCALAR, "flash_mla_quantized_q_scalar", flash_mla_quantized_q_scalar,
                                      true};
    const FlashMlaKernel ref = flash_mla_kernels(type).front();
    for (int64_t n_kv : {1, 300, 2048}) {
      const Cache c = random_cache(rng, type, n_kv);
      const int64_t rows = 16;
      const float scale = 0.1f;
      std::vector<float> qmem(static_cast<size_t>(rows * kDk)), rounded(static_cast<size_t>(rows * kDk));
      for (float& v : qmem) v = rng.normal();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t b = 0; b < kDk / 32; ++b) {
          int8_t q8[32];
          const float d = kernels::quantize_query_block(qmem.data() + r * kDk + 32 * b, scale, q8);
          for (int i = 0; i < 32; ++i) rounded[size_t(r * kDk + 32 * b + i)] = float(q8[i]) * d / scale;
        }
      std::vector<const float*> q(static_cast<size_t>(rows)), qr(static_cast<size_t>(rows));
      std::vector<int64_t> visible(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        q[size_t(r)] = qmem.data() + r * kDk;
        qr[size_t(r)] = rounded.data() + r * kDk;
        visible[size_t(r)] = 1 + rng.below(n_kv);
      }
      States want(rows), got(rows);
      run(ref, c, qr, visible, scale, 0, n_kv, 0, want);
      run(quantized, c, q, visible, scale, 0, n_kv, 0, got);
      int bad = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const std::vector<float> w = merged_output({want}, r), g = merged_output({got}, r);
        for (int64_t ch = 0; ch < kDv; ++ch)
          if (!(std::fabs(w[size_t(ch)] - g[size_t(ch)]) <= 1e-4 * c.vmax) && bad++ < 3)
            std::fprintf(stderr, "  %s n_kv=%ld r=%ld c=%ld got %g want %g\n", type_name(type), long(n_kv), long(r),
                         long(ch), g[size_t(ch)], w[size_t(ch)]);
      }
      CHECK(bad == 0);
    }
  }
}

TEST(attention_quantized_queries_edges) {
  // Zero, tiny (1 / d overflows) and non-finite query blocks.
  int8_t out[32];
  float zeros[32] = {}, tiny[32], big[32];
  for (int i = 0; i < 32; ++i) tiny[i] = std::ldexp(1.0f, -140) * float(i % 3), big[i] = float(i) - 16.0f;
  CHECK(kernels::quantize_query_block(zeros, 1.0f, out) == 0.0f);
  for (int8_t v : out) CHECK(v == 0);
  CHECK(kernels::quantize_query_block(tiny, 1.0f, out) == 0.0f);
  for (int8_t v : out) CHECK(v == 0);
  // max |x| = 16: d = 16 / 127, x = -16 -> -127, x = 15 -> round(15 * 127 / 16) = 119.
  CHECK(kernels::quantize_query_block(big, 1.0f, out) == 16.0f / 127.0f);
  CHECK(out[0] == -127 && out[31] == 119 && out[16] == 0);
  big[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(kernels::quantize_query_block(big, 1.0f, out)));
  big[7] = std::numeric_limits<float>::infinity();
  CHECK(std::isnan(kernels::quantize_query_block(big, 1.0f, out)));
  // A NaN query row gives NaN outputs in every quantized-query variant and its reference,
  // as in the float variants: never a silently finite answer.
  Rng rng(26);
  for (TensorType type : {TensorType::Q8_0, TensorType::Q8_KV}) {
    const Cache c = random_cache(rng, type, 100);
    std::vector<float> qmem(size_t(16 * kDk));
    for (float& v : qmem) v = rng.normal();
    qmem[size_t(3 * kDk + 40)] = std::numeric_limits<float>::quiet_NaN();
    std::vector<const float*> q(16);
    for (int r = 0; r < 16; ++r) q[size_t(r)] = qmem.data() + r * kDk;
    const std::vector<int64_t> visible(16, 100);
    std::vector<FlashMlaKernel> kernels;
    for (const FlashMlaKernel& v : flash_mla_kernels(type))
      if (v.quantized_queries) kernels.push_back(v);
    kernels.push_back({type, Isa::SCALAR, "flash_mla_quantized_q_scalar", flash_mla_quantized_q_scalar, true});
    for (const FlashMlaKernel& kernel : kernels) {
      States st(16);
      run(kernel, c, q, visible, 0.1f, 0, 100, 0, st);
      const std::vector<float> bad_row = merged_output({st}, 3), good_row = merged_output({st}, 4);
      CHECK(std::isnan(bad_row[0]));
      CHECK(std::isfinite(good_row[0]));
    }
  }
}

TEST(attention_flash_mla_large_scores) {
  // Scores of hundreds: the online max must keep e^(s - m) in range across chunks.
  Rng rng(22);
  for (TensorType type : kCacheTypes) {
    const std::vector<FlashMlaKernel> variants = flash_mla_kernels(type);
    Cache c = random_cache(rng, type, 300);
    for (size_t v = 1; v < variants.size(); ++v) {
      std::vector<float> qmem(size_t(16 * kDk));
      for (float& x : qmem) x = 40 * rng.normal();
      std::vector<const float*> q(16);
      std::vector<int64_t> visible(16, 300);
      for (int r = 0; r < 16; ++r) q[size_t(r)] = qmem.data() + r * kDk;
      States want(16), got(16);
      run(reference_for(variants[v], variants), c, q, visible, 0.07f, 0, 300, 0, want);
      run(variants[v], c, q, visible, 0.07f, 0, 300, 0, got);
      int bad = 0;
      for (int64_t r = 0; r < 16; ++r) {
        const std::vector<float> w = merged_output({want}, r), g = merged_output({got}, r);
        for (int64_t ch = 0; ch < kDv; ++ch)
          if (!(std::fabs(w[size_t(ch)] - g[size_t(ch)]) <= (2e-3 + weight_rounding(variants[v])) * c.vmax) &&
              bad++ < 3)
            std::fprintf(stderr, "  %s r=%ld c=%ld got %g want %g\n", variants[v].name, long(r), long(ch),
                         g[size_t(ch)], w[size_t(ch)]);
      }
      CHECK(bad == 0);
    }
  }
}

TEST(attention_vec_ops_match_scalar) {
  Rng rng(23);
  const Isa top = active_isa();
  for (int isa = 0; isa <= int(top); ++isa) {
    set_isa_cap(Isa(isa));
    const AttentionVecOps& v = attention_vec_ops();
    for (int64_t n : {1, 7, 8, 15, 16, 33, 64, 128, 192, 576}) {
      const size_t un = static_cast<size_t>(n);
      std::vector<float> a(un), b(un), y(un + 1, 0.5f), want(un + 1, 0.5f);
      double abs = 0, exact = 0;
      for (int64_t i = 0; i < n; ++i) {
        a[size_t(i)] = rng.normal();
        b[size_t(i)] = rng.normal();
        abs += std::fabs(double(a[size_t(i)]) * b[size_t(i)]);
        exact += double(a[size_t(i)]) * b[size_t(i)];
      }
      CHECK_NEAR(v.dot(a.data(), b.data(), n), exact, 1e-6 * abs + 1e-30);
      v.axpy(y.data(), 0.75f, a.data(), n);
      for (int64_t i = 0; i < n; ++i) want[size_t(i)] += 0.75f * a[size_t(i)];
      for (int64_t i = 0; i <= n; ++i) CHECK_NEAR(y[size_t(i)], want[size_t(i)], 1e-6);
    }
  }
  clear_isa_cap();
}

TEST(attention_flash_mla_f32_rows_with_skip) {
  // attn_decompressed's use: F32 rows [v ; k_nope ; k_pe] (dk 320), V the first 128, scores
  // over the last 192 (k_skip 128), called chunk by chunk with states carried over.
  Rng rng(24);
  const int64_t dk = 320, dv = 128, skip = 128;
  const std::vector<FlashMlaKernel> variants = flash_mla_kernels(TensorType::F32);
  CHECK(!variants.empty() && variants.front().isa == Isa::SCALAR);
  for (int64_t n_kv : {1, 5, 32, 77, 600}) {
    for (int64_t rows : {1, 3, 16, 64}) {
      std::vector<float> cache(size_t(n_kv * dk)), qmem(size_t(rows * (dk - skip)));
      for (float& v : cache) v = rng.normal();
      for (float& v : qmem) v = rng.normal();
      std::vector<const float*> q(static_cast<size_t>(rows));
      std::vector<int64_t> visible(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        q[size_t(r)] = qmem.data() + r * (dk - skip);
        visible[size_t(r)] = std::max<int64_t>(1, n_kv - (rows - 1 - r));
      }
      std::vector<std::vector<float>> outs;
      for (const FlashMlaKernel& kernel : variants) {
        std::vector<float> m(size_t(rows), -std::numeric_limits<float>::infinity()), l(size_t(rows), 0.0f),
            acc(size_t(rows * dv), 0.0f);
        std::vector<uint8_t> scratch_mem(flash_mla_scratch_bytes(dk, rows) + 64);
        uint8_t* scratch = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(scratch_mem.data()) + 63) / 64 * 64);
        for (int64_t c0 = 0; c0 < n_kv; c0 += 32) {
          FlashMlaArgs a;
          a.dk = dk;
          a.dv = dv;
          a.k_type = TensorType::F32;
          a.k = reinterpret_cast<const uint8_t*>(cache.data());
          a.k_row_bytes = size_t(dk) * 4;
          a.k_skip = skip;
          a.j0 = c0;
          a.j1 = std::min(n_kv, c0 + 32);
          a.q = q.data();
          a.visible = visible.data();
          a.n_rows = rows;
          a.scale = 0.1f;
          a.m = m.data();
          a.l = l.data();
          a.acc = acc.data();
          a.acc_stride = size_t(dv);
          a.scratch = scratch;
          kernel.fn(a);
        }
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < dv; ++c) acc[size_t(r * dv + c)] /= l[size_t(r)];
        outs.push_back(acc);
      }
      for (size_t v = 1; v < outs.size(); ++v) {
        int bad = 0;
        for (size_t i = 0; i < outs[0].size(); ++i)
          if (!(std::fabs(outs[v][i] - outs[0][i]) <= 1e-4 * 3.0) && bad++ < 3)
            std::fprintf(stderr, "  %s n_kv=%ld rows=%ld i=%zu got %g want %g\n", variants[v].name, long(n_kv),
                         long(rows), i, outs[v][i], outs[0][i]);
        CHECK(bad == 0);
      }
    }
  }
}

// The decompressed flash (attn_decompressed on AVX2/AVX512 CPUs) against its scalar reference:
// kv_b-shaped rows (k_nope then v, a stride wider than both), k_pe apart, two chunks with
// the states carried over, rows that see all, some or none of a chunk, sentinels past the
// last row's state and past dv. The bf16 variant (quantized caches) is held to the
// reference run on its rounded values: what is left is P's rounding, a relative 2^-8 per
// term at most, so 2^-8 of the largest value.
void check_decompressed_flash(DecompressedFlashFn kernel, const char* isa, bool rounds_to_bf16);

TEST(attention_decompressed_flash_matches_scalar) {
  // Every variant the machine runs: the ISA capped at each level in turn.
  for (Isa cap : {Isa::AVX2, Isa::AVX512, Isa::AVX512_BF16}) {
    set_isa_cap(cap);
    const bool runs = active_isa() >= cap;
    const DecompressedFlashFn kernel = decompressed_flash_kernel(128, 64, 128, TensorType::Q8_0);
    const bool rounds = cap == Isa::AVX512_BF16;
    CHECK(decompressed_flash_kernel(128, 64, 96, TensorType::Q8_0) == nullptr);  // dv not a multiple of 64
    CHECK(decompressed_flash_kernel(100, 64, 128, TensorType::Q8_0) == nullptr);
    if (runs && rounds) {
      // Exact caches keep the f32 kernel.
      set_isa_cap(Isa::AVX512);
      const DecompressedFlashFn f32 = decompressed_flash_kernel(128, 64, 128, TensorType::F16);
      set_isa_cap(cap);
      CHECK(kernel != f32);
      for (TensorType exact : {TensorType::F16, TensorType::BF16, TensorType::F32})
        CHECK(decompressed_flash_kernel(128, 64, 128, exact) == f32);
      CHECK(decompressed_flash_kernel(128, 64, 128, TensorType::Q6_0) == kernel);
      CHECK(decompressed_flash_kernel(128, 64, 128, TensorType::Q8_KV) == kernel);
    }
    clear_isa_cap();
    if (!runs) {
      std::fprintf(stderr, "  (no %s here: its decompressed flash not run)\n", isa_name(cap));
      continue;
    }
    CHECK(kernel != nullptr);
    if (kernel) check_decompressed_flash(kernel, isa_name(cap), rounds);
  }
}

// x rounded to bf16 (nearest even), as a float.
static float round_bf16(float x) { return bf16_to_fp32(fp32_to_bf16(x)); }

void check_decompressed_flash(DecompressedFlashFn kernel, const char* isa, bool rounds_to_bf16) {
  const int64_t nope = 128, rope = 64, dv = 128, stride = nope + dv + 16, acc_stride = dv + 3;
  Rng rng(27);
  std::vector<uint8_t> scratch_mem(decompressed_flash_scratch_bytes(nope + rope, dv) + 64);
  uint8_t* scratch = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(scratch_mem.data()) + 63) / 64 * 64);
  for (int64_t n_keys : {1, 5, 31, 32, 33, 100, 256}) {
    for (int64_t rows : {1, 3, 16, 17, 40, 64}) {
      for (int mask = 0; mask < 2; ++mask) {
        std::vector<float> qmem(size_t(rows * (nope + rope)));
        for (float& v : qmem) v = rng.normal();
        std::vector<const float*> q(static_cast<size_t>(rows));
        for (int64_t r = 0; r < rows; ++r) q[size_t(r)] = qmem.data() + r * (nope + rope);
        const float inf = std::numeric_limits<float>::infinity();
        std::vector<float> m_want(size_t(rows), -inf), l_want(size_t(rows), 0.0f), acc_want(size_t(rows * acc_stride), 0.0f);
        // NaN sentinels past the last row (a finite state of a row that sees nothing would
        // come back unchanged): a variant writes the states of its rows only.
        const float sentinel = std::numeric_limits<float>::quiet_NaN();
        std::vector<float> m_got = m_want, l_got = l_want, acc_got = acc_want;
        m_got.resize(size_t(rows + 16), sentinel);
        l_got.resize(size_t(rows + 16), sentinel);
        double vmax = 0;
        for (int chunk = 0; chunk < 2; ++chunk) {
          std::vector<float> kv(size_t(n_keys * stride)), k_pe(size_t(n_keys * rope));
          for (float& v : kv) v = rng.normal();
          for (float& v : k_pe) v = 2 * rng.normal();
          for (int64_t j = 0; j < n_keys; ++j)
            for (int64_t c = 0; c < dv; ++c) vmax = std::max(vmax, double(std::fabs(kv[size_t(j * stride + nope + c)])));
          // Causal (the last row sees the whole chunk, earlier ones less, some nothing) or
          // random counts, some past the chunk's end.
          std::vector<int64_t> visible(static_cast<size_t>(rows));
          for (int64_t r = 0; r < rows; ++r)
            visible[size_t(r)] = mask == 0 ? n_keys - (rows - 1 - r) : int64_t(rng.below(n_keys + 8));
          DecompressedFlashArgs a;
          a.nope = nope;
          a.rope = rope;
          a.dv = dv;
          a.n_rows = rows;
          a.q = q.data();
          a.visible = visible.data();
          a.n_keys = n_keys;
          a.kv = kv.data();
          a.kv_stride = size_t(stride);
          a.k_pe = k_pe.data();
          a.scale = 0.1f;
          a.acc_stride = size_t(acc_stride);
          a.scratch = scratch;
          a.m = m_got.data(), a.l = l_got.data(), a.acc = acc_got.data();
          kernel(a);
          a.m = m_want.data(), a.l = l_want.data(), a.acc = acc_want.data();
          if (rounds_to_bf16)
            for (int64_t j = 0; j < n_keys; ++j)
              for (int64_t c = 0; c < dv; ++c) kv[size_t(j * stride + nope + c)] = round_bf16(kv[size_t(j * stride + nope + c)]);
          decompressed_flash_scalar(a);
        }
        int bad = 0;
        const double tol = (1e-4 + (rounds_to_bf16 ? std::ldexp(1.0, -8) : 0.0)) * vmax;
        for (int64_t r = 0; r < rows; ++r) {
          if ((l_want[size_t(r)] == 0) != (l_got[size_t(r)] == 0)) {
            if (bad++ < 3) std::fprintf(stderr, "  keys=%ld rows=%ld r=%ld: empty in one only\n", long(n_keys), long(rows), long(r));
            continue;
          }
          const float* w = acc_want.data() + r * acc_stride;
          const float* g = acc_got.data() + r * acc_stride;
          for (int64_t pad = dv; pad < acc_stride; ++pad)
            if (g[pad] != 0 && bad++ < 3) std::fprintf(stderr, "  wrote past dv\n");
          if (l_want[size_t(r)] == 0) {
            for (int64_t c = 0; c < dv; ++c)
              if (g[c] != 0 && bad++ < 3) std::fprintf(stderr, "  r=%ld: saw nothing but acc is %g\n", long(r), g[c]);
            continue;
          }
          const double lse_w = m_want[size_t(r)] + std::log(double(l_want[size_t(r)]));
          const double lse_g = m_got[size_t(r)] + std::log(double(l_got[size_t(r)]));
          if (!(std::fabs(lse_w - lse_g) <= 1e-4) && bad++ < 3)
            std::fprintf(stderr, "  keys=%ld rows=%ld r=%ld: log-sum-exp %.9g want %.9g\n", long(n_keys), long(rows),
                         long(r), lse_g, lse_w);
          for (int64_t c = 0; c < dv; ++c) {
            const double d = std::fabs(double(w[c]) / l_want[size_t(r)] - double(g[c]) / l_got[size_t(r)]);
            if (!(d <= tol) && bad++ < 3)
              std::fprintf(stderr, "  %s keys=%ld rows=%ld mask=%d r=%ld c=%ld: got %.9g want %.9g\n", isa, long(n_keys),
                           long(rows), mask, long(r), long(c), g[c] / l_got[size_t(r)], w[c] / l_want[size_t(r)]);
          }
        }
        for (int64_t r = rows; r < rows + 16; ++r)
          if ((!std::isnan(m_got[size_t(r)]) || !std::isnan(l_got[size_t(r)])) && bad++ < 3)
            std::fprintf(stderr, "  rows=%ld: the state of row %ld was written\n", long(rows), long(r));
        CHECK(bad == 0);
      }
    }
  }
}
