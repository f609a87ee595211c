// Every registered kernel variant the machine can run, against the scalar reference:
// matmul on random data, tails, zero rows and extreme scales; activation quantizers
// byte for byte. test/native.test.ts runs this binary once per ISA level (DEEPMLA_ISA),
// so each level's dispatch is exercised too.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "deepmla/error.hpp"
#include "deepmla/kernels.hpp"
#include "deepmla/types.hpp"
#include "formats/blocks.hpp"
#include "test.hpp"

namespace {

using namespace deepmla;

using deepmla::test::Rng;

const TensorType kMatmulTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16,
                                   TensorType::Q8_0, TensorType::Q6_0, TensorType::Q8_KV};

// Rows of one type, quantized from random floats by the scalar reference, with a few
// rows made special: all zero, and (for the block types) raw extreme scales.
struct Matrix {
  TensorType type;
  int64_t rows, k;
  size_t row_bytes;
  std::vector<uint8_t> data;
  const uint8_t* row(int64_t r) const { return data.data() + size_t(r) * row_bytes; }
  uint8_t* row(int64_t r) { return data.data() + size_t(r) * row_bytes; }
};

Matrix random_matrix(Rng& rng, TensorType type, int64_t rows, int64_t k, float scale) {
  Matrix m{type, rows, k, row_bytes(type, k), {}};
  m.data.resize(m.row_bytes * size_t(rows));
  std::vector<float> f(static_cast<size_t>(k));
  for (int64_t r = 0; r < rows; ++r) {
    // Vary magnitude across rows so per-block scales differ a lot within one tile.
    const float row_scale = scale * (r % 3 == 1 ? 0.01f : 1.0f);
    for (float& v : f) v = row_scale * rng.normal();
    type_traits(type).quantize_row(f.data(), m.row(r), k);
  }
  return m;
}

// Overwrites some weight rows with content the quantizer would never produce: a zero row,
// raw int8 including -128, the largest and smallest fp16 scales, tiny/huge Q8_KV scales.
void add_special_weight_rows(Rng& rng, Matrix& m) {
  if (m.rows < 4) return;
  std::memset(m.row(0), 0, m.row_bytes);
  const int64_t nb = m.k / 32;
  if (m.type == TensorType::Q8_0) {
    auto* b = reinterpret_cast<formats::BlockQ8_0*>(m.row(2));
    for (int64_t i = 0; i < nb; ++i) {
      for (int8_t& q : b[i].qs) q = int8_t(rng.next());
      b[i].qs[i % 32] = -128;
      b[i].d = i % 3 == 0 ? 0x7bff : i % 3 == 1 ? 0x0001 : fp32_to_fp16(rng.uniform(-2, 2));
    }
  } else if (m.type == TensorType::Q6_0) {
    auto* b = reinterpret_cast<formats::BlockQ6_0*>(m.row(2));
    for (int64_t i = 0; i < nb; ++i) {
      for (uint8_t& q : b[i].qh) q = uint8_t(rng.next());
      for (uint8_t& q : b[i].qs) q = uint8_t(rng.next());
      b[i].d = i % 3 == 0 ? 0x7bff : i % 3 == 1 ? 0x0001 : fp32_to_fp16(rng.uniform(-2, 2));
    }
  } else if (m.type == TensorType::Q8_KV) {
    for (int64_t r : {int64_t(2), int64_t(3)}) {
      const formats::RowHeaderQ8_KV h{r == 2 ? 1e-30f : 1e4f, 0};
      std::memcpy(m.row(r), &h, sizeof h);
      int8_t* q = reinterpret_cast<int8_t*>(m.row(r) + 8);
      for (int64_t j = 0; j < m.k; ++j) q[j] = int8_t(rng.next());
      q[0] = -128;
    }
  }
}

// n activation rows as floats (row 0 always an ordinary one: with n = 1 it is the only row
// the GEMV sees; a 1e-30 row quantizes to zero scales in Q8_0, and every kernel passes on
// zeros), converted by the scalar reference into each type a kernel reads.
struct Activations {
  int64_t n, k;
  std::vector<float> f;
  std::vector<Matrix> converted;
  const Matrix& as(TensorType type) {
    for (const Matrix& m : converted)
      if (m.type == type) return m;
    Matrix x{type, n, k, row_bytes(type, k), {}};
    x.data.resize(x.row_bytes * size_t(n));
    for (int64_t i = 0; i < n; ++i) type_traits(type).quantize_row(f.data() + i * k, x.row(i), k);
    converted.push_back(std::move(x));
    return converted.back();
  }
  const Matrix& for_kernel(const MatmulKernel& kernel) { return as(kernel.act_type); }
};

Activations random_activations(Rng& rng, int64_t n, int64_t k) {
  Activations a{n, k, std::vector<float>(size_t(n * k)), {}};
  a.converted.reserve(4);
  const float scales[] = {1.0f, 1e-30f, 1e4f, 0.0f, 3e-3f};
  for (int64_t i = 0; i < n; ++i) {
    const float scale = i == 0 ? 1.0f : i < 5 ? scales[(i + n) % 5] : scales[i % 2 == 0 ? 0 : 4];
    for (int64_t j = 0; j < k; ++j) a.f[size_t(i * k + j)] = scale * rng.normal();
  }
  return a;
}

// Sum of |w_j x_j| over a row pair, from the dequantized rows: the scale of every
// rounding error a different summation order can make.
double abs_dot(const Matrix& w, int64_t r, const Matrix& x, int64_t i) {
  std::vector<float> a(static_cast<size_t>(w.k)), b(static_cast<size_t>(w.k));
  type_traits(w.type).dequantize_row(w.row(r), a.data(), w.k);
  type_traits(x.type).dequantize_row(x.row(i), b.data(), w.k);
  double s = 0;
  for (size_t j = 0; j < a.size(); ++j) s += std::fabs(double(a[j]) * double(b[j]));
  return s;
}

// Allowed |kernel - reference|. Integer block dots are exact, so only float rounding
// differs: the scalar reference sums k/32 block terms (F32/F16/BF16: k products, in
// double) one after the other; a SIMD variant sums them in lanes and then across lanes.
// Either order is within (terms + lanes) * 2^-24 of the exact sum, relative to abs_dot.
// The bf16 GEMMs add each of the k products to an f32 accumulator.
double tolerance(const MatmulKernel& kernel, int64_t k, double abs_sum) {
  const TypeTraits& t = type_traits(kernel.weight_type);
  const double terms = kernel.act_type == TensorType::BF16 ? double(k) : t.quantized ? double(k / 32) : double(k / 8);
  double tol = 2 * (terms + 32) * 0x1p-24 * abs_sum;
  // Native BF16 dot products round the F32 activations to bf16 (8-bit mantissa).
  if (kernel.isa == Isa::AVX512_BF16 && kernel.weight_type == TensorType::BF16) tol += 0x1p-8 * abs_sum;
  return tol + 1e-35;
}

// The reference of a kernel over bf16 activations (the AMX GEMMs): each weight rounded to
// bf16 (nearest even) from its dequantized float, times the bf16 activation, in double.
float bf16_reference_dot(const Matrix& w, int64_t r, const Matrix& x, int64_t i) {
  std::vector<float> a(static_cast<size_t>(w.k));
  type_traits(w.type).dequantize_row(w.row(r), a.data(), w.k);
  const uint16_t* b = reinterpret_cast<const uint16_t*>(x.row(i));
  double sum = 0;
  for (int64_t j = 0; j < w.k; ++j) sum += double(bf16_to_fp32(fp32_to_bf16(a[size_t(j)]))) * double(bf16_to_fp32(b[j]));
  return float(sum);
}

constexpr float kSentinel = -1234.5f;

// Runs one variant and the reference on rows [r0, r1) of w and all of x; returns the
// number of mismatches (printing the first few).
int compare_matmul(const MatmulKernel& kernel, const Matrix& w, int64_t r0, int64_t r1, Activations& xs) {
  const TypeTraits& t = type_traits(w.type);
  const Matrix& x = xs.for_kernel(kernel);
  const bool bf16 = kernel.act_type == TensorType::BF16;
  const size_t y_stride = size_t(w.rows) + 3;  // padding must stay untouched
  std::vector<float> y(y_stride * size_t(x.rows), kSentinel);
  kernel.fn(w.k, w.data.data(), w.row_bytes, r0, r1, x.data.data(), x.row_bytes, x.rows, y.data(), y_stride);
  int bad = 0;
  for (int64_t i = 0; i < x.rows; ++i) {
    for (int64_t r = 0; r < int64_t(y_stride); ++r) {
      const float got = y[size_t(i) * y_stride + size_t(r)];
      if (r < r0 || r >= r1) {
        if (std::memcmp(&got, &kSentinel, 4) != 0 && bad++ < 3)
          std::fprintf(stderr, "  %s wrote outside [r0, r1): i=%ld r=%ld\n", kernel.name, long(i), long(r));
        continue;
      }
      const float ref = bf16 ? bf16_reference_dot(w, r, x, i) : t.vec_dot(w.k, w.row(r), x.row(i));
      // Q8_KV variants compute the scalar expression on an exact integer dot: bit-identical.
      const double tol = w.type == TensorType::Q8_KV ? 0.0 : tolerance(kernel, w.k, abs_dot(w, r, x, i));
      const bool ok = std::isfinite(got) && std::fabs(double(got) - double(ref)) <= tol;
      if (!ok && bad++ < 3)
        std::fprintf(stderr, "  %s k=%ld n=%ld r=%ld i=%ld: got %.9g want %.9g (tol %g)\n", kernel.name, long(w.k),
                     long(x.rows), long(r), long(i), got, ref, tol);
    }
  }
  return bad;
}

std::vector<int64_t> ks_for(TensorType type) {
  if (type_traits(type).quantized) return {32, 64, 128, 224, 512, 576, 1408, 2048};  // 224, 1408: 7 and 4 blocks past a group of 8
  return {1, 7, 8, 33, 64, 128, 512, 576, 2048};  // F32/F16/BF16 rows need not fill a vector
}

}  // namespace

TEST(cpu_reports_isa) {
  // test/native.test.ts parses this line to learn which levels to run.
  std::printf("detected_isa=%s active_isa=%s\n", isa_name(detected_isa()), isa_name(active_isa()));
  CHECK(int(active_isa()) <= int(detected_isa()));
  Isa env;
  const char* value = std::getenv("DEEPMLA_ISA");
  if (value && isa_from_name(value, &env)) {
    const Isa want = int(env) < int(detected_isa()) ? env : detected_isa();
    CHECK(active_isa() == want);
  }
  Isa parsed = Isa::AVX2;
  CHECK(!isa_from_name("avx3", &parsed) && parsed == Isa::AVX2);
  CHECK(isa_from_name("avx512vnni", &parsed) && parsed == Isa::AVX512_VNNI);
}

TEST(kernels_isa_cap_limits_dispatch) {
  const Isa before = active_isa();
  set_isa_cap(Isa::SCALAR);
  CHECK(active_isa() == Isa::SCALAR);
  for (TensorType type : kMatmulTypes) {
    CHECK(matmul_kernel(type).isa == Isa::SCALAR);
    CHECK(matmul_kernels(type).size() == 1);
  }
  CHECK(activation_quantizers(TensorType::Q8_0).size() == 1);
  clear_isa_cap();
  CHECK(active_isa() == before);
}

TEST(kernels_registry_is_consistent) {
  std::set<std::string> names;
  for (const MatmulKernel& kernel : all_matmul_kernels()) {
    CHECK(names.insert(kernel.name).second);
    // A symbol equals its file name: matmul_<type>_<isa>.
    const std::string type = type_name(kernel.weight_type);
    std::string lower;
    for (char ch : type) lower += char(std::tolower(static_cast<unsigned char>(ch)));
    CHECK(std::string(kernel.name) == "matmul_" + lower + "_" + isa_name(kernel.isa));
    CHECK(int(kernel.isa) <= int(active_isa()));
  }
  for (TensorType type : kMatmulTypes) {
    const std::vector<MatmulKernel> variants = matmul_kernels(type);
    CHECK(!variants.empty() && variants.front().isa == Isa::SCALAR);
    for (size_t v = 1; v < variants.size(); ++v) CHECK(int(variants[v - 1].isa) <= int(variants[v].isa));
    // Any n takes the last variant that serves one row; a prompt-sized batch the last of all.
    const MatmulKernel* any_n = nullptr;
    for (const MatmulKernel& kernel : variants) {
      if (kernel.min_rows == 1) any_n = &kernel;
      // Only the GEMMs with a minimum read other activations than the format's own.
      CHECK(kernel.act_type == (kernel.min_rows == 1 ? type_traits(type).vec_dot_type : TensorType::BF16));
      std::printf("  variant %s\n", kernel.name);
    }
    CHECK(any_n && matmul_kernel(type).fn == any_n->fn && matmul_kernel(type, 1).fn == any_n->fn);
    CHECK(matmul_kernel(type, 512).fn == variants.back().fn);
    CHECK(matmul_kernel(type, variants.back().min_rows - 1).min_rows == 1 || variants.back().min_rows == 1);
    CHECK(matmul_activation_stride(type, 2048) >= activation_stride(variants.back(), 2048));
  }
  CHECK_THROWS_CODE(matmul_kernel(TensorType::I32), "UNSUPPORTED");
  for (TensorType type : {TensorType::F32, TensorType::BF16, TensorType::Q8_0, TensorType::Q8_KV}) {
    const std::vector<QuantizeKernel> variants = activation_quantizers(type);
    CHECK(!variants.empty() && variants.front().isa == Isa::SCALAR);
    CHECK(activation_quantizer(type) == variants.back().fn);
  }
}

TEST(kernels_matmul_variants_match_scalar) {
  Rng rng(11);
  const int64_t ns[] = {1, 2, 3, 5, 8, 16, 17, 32, 49, 64, 97};
  for (TensorType type : kMatmulTypes) {
    const std::vector<MatmulKernel> variants = matmul_kernels(type);
    for (int64_t k : ks_for(type)) {
      // 13 rows, multiplied on [1, 12): 11 rows is a multiple of no tile height.
      Matrix w = random_matrix(rng, type, 13, k, k % 3 == 0 ? 30.0f : 0.05f);
      add_special_weight_rows(rng, w);
      for (int64_t n : ns) {
        Activations x = random_activations(rng, n, k);
        for (const MatmulKernel& kernel : variants) {
          const int bad = compare_matmul(kernel, w, 1, 12, x) + compare_matmul(kernel, w, 0, 13, x) +
                          compare_matmul(kernel, w, 5, 6, x);
          CHECK(bad == 0);
        }
      }
    }
  }
}

TEST(kernels_matmul_tall_row_ranges) {
  // Row ranges past one 16-row panel: the VNNI kernels take rows 32 at a time (two panels
  // per tile, the second possibly partial) and a last single panel; the AVX2 panels 8 at
  // a time, or 16 (Q8_0 and Q8_KV, n >= 32: int16 panels). Ranges of 17..70 rows from
  // several starts, n across the 6- and 8-column tiles.
  Rng rng(14);
  const std::pair<int64_t, int64_t> ranges[] = {{0, 70}, {3, 40}, {0, 17}, {5, 37}, {0, 33}, {1, 49}, {2, 66}};
  for (TensorType type : kMatmulTypes) {
    const int64_t k = type_traits(type).quantized ? 96 : 33;
    Matrix w = random_matrix(rng, type, 70, k, 1.0f);
    add_special_weight_rows(rng, w);
    for (int64_t n : {4, 5, 6, 7, 12, 13, 33, 49, 64, 97}) {
      Activations x = random_activations(rng, n, k);
      for (const MatmulKernel& kernel : matmul_kernels(type))
        for (const auto& [r0, r1] : ranges) CHECK(compare_matmul(kernel, w, r0, r1, x) == 0);
    }
  }
}

TEST(kernels_matmul_float_panels) {
  // F16 and BF16 on AVX512 take weight panels for 2+ activation rows
  // (float_panel_avx512.hpp): ranges that start and end inside a panel pair or within one
  // panel, k that ends inside a 16-step transpose, odd k (a BF16 pair half zero), n across
  // the 12-column tiles.
  Rng rng(15);
  const std::pair<int64_t, int64_t> ranges[] = {{0, 300}, {7, 290}, {3, 262}, {5, 9}};
  for (TensorType type : {TensorType::F16, TensorType::BF16}) {
    for (int64_t k : {333, 576}) {
      Matrix w = random_matrix(rng, type, 300, k, 1.0f);
      add_special_weight_rows(rng, w);
      for (int64_t n : {2, 16, 49, 97}) {
        Activations x = random_activations(rng, n, k);
        for (const MatmulKernel& kernel : matmul_kernels(type))
          for (const auto& [r0, r1] : ranges) CHECK(compare_matmul(kernel, w, r0, r1, x) == 0);
      }
    }
  }
}

TEST(kernels_matmul_large_n_crosses_chunks) {
  // Enough activation rows that the tiling splits them into several chunks: 1201 rows
  // of k = 7168 are over 8.5 MB in every activation type, past both the L2-sized chunks
  // of the in-place tiles (192 KiB) and the panel kernels' 8 MiB (tiling.hpp).
  Rng rng(12);
  for (TensorType type : kMatmulTypes) {
    const int64_t k = 7168, n = 1201;
    CHECK(int64_t(row_bytes(type_traits(type).vec_dot_type, k)) * n > (int64_t(8) << 20));
    const Matrix w = random_matrix(rng, type, 9, k, 1.0f);
    Activations x = random_activations(rng, n, k);
    for (const MatmulKernel& kernel : matmul_kernels(type)) CHECK(compare_matmul(kernel, w, 0, 9, x) == 0);
  }
}

TEST(kernels_matmul_long_k_in_slices) {
  // k = 4160 over 200 rows: too long for the AMX GEMM to keep a chunk's activations whole,
  // so it runs k in two slices and parks the accumulators of each 32 x 32 block between
  // them; 67 weight rows from row 3 are three panel pairs, the last one partial.
  Rng rng(15);
  for (TensorType type : kMatmulTypes) {
    const int64_t k = 4160, n = 200;
    Matrix w = random_matrix(rng, type, 70, k, 0.5f);
    add_special_weight_rows(rng, w);
    Activations x = random_activations(rng, n, k);
    for (const MatmulKernel& kernel : matmul_kernels(type)) CHECK(compare_matmul(kernel, w, 3, 70, x) == 0);
  }
}

TEST(kernels_quantizers_match_scalar_bytes) {
  Rng rng(13);
  for (TensorType type : {TensorType::F32, TensorType::BF16, TensorType::Q8_0, TensorType::Q8_KV}) {
    const TypeTraits& t = type_traits(type);
    std::vector<int64_t> ns = {32, 64, 96, 576, 2048, 7168};
    if (!t.quantized) ns.insert(ns.end(), {1, 7, 33});  // rows that end inside a vector
    for (const QuantizeKernel& kernel : activation_quantizers(type)) {
      for (int64_t n : ns) {
        for (int pattern = 0; pattern < (t.quantized ? 9 : 10); ++pattern) {
          std::vector<float> x(static_cast<size_t>(n));
          const float scale = pattern == 1 ? 1e-30f : pattern == 2 ? 1e4f : pattern == 3 ? 0.0f : 1.0f;
          for (float& v : x) v = scale * rng.normal();
          if (pattern == 4) {
            // Exact ties: amax 127 gives d = 1 and every x + 0.5 is halfway between quants.
            for (size_t j = 0; j < x.size(); ++j) x[j] = float(int(rng.next() % 253) - 126) + 0.5f;
            for (size_t j = 0; j < x.size(); j += 32) x[j] = j % 64 ? 127.0f : -127.0f;
          } else if (pattern == 5) {
            for (size_t j = 0; j < x.size(); ++j) x[j] = j % 2 ? -0.0f : 0.0f;
            x[x.size() / 2] = 1e-3f;  // one non-zero value: all other blocks are zero blocks
          } else if (pattern == 6) {
            // Tiny normal floats: d is near FLT_MIN.
            for (size_t j = 0; j < x.size(); ++j) x[j] = std::ldexp(float(j % 5) - 2, -118);
          } else if (pattern == 8) {
            // Below about 2^-119 1/d overflows: such blocks quantize to zeros.
            for (size_t j = 0; j < x.size(); ++j) x[j] = std::ldexp(float(j % 5) - 2, -128 - int(j % 16));
          } else if (pattern == 7) {
            for (float& v : x) v *= 1e30f;  // Q8_0's fp16 scale overflows to inf in both
          } else if (pattern == 9) {
            // Float rows only: NaNs (quiet and signalling), infinities, denormals, bf16 ties.
            const uint32_t bits[] = {0x7fc00000u, 0x7f800001u, 0xff800000u, 0x7f800000u, 0x00000001u,
                                     0x807fffffu, 0x3f808000u, 0x3f818000u, 0x7f7fffffu};
            for (size_t j = 0; j < x.size(); ++j) std::memcpy(&x[j], &bits[j % 9], 4);
          }
          const size_t bytes = row_bytes(type, n);
          std::vector<uint8_t> want(bytes, 0xcd), got(bytes, 0xcd);
          t.quantize_row(x.data(), want.data(), n);
          kernel.fn(x.data(), got.data(), n);
          if (want != got) {
            size_t at = 0;
            while (want[at] == got[at]) ++at;
            std::fprintf(stderr, "  %s n=%ld pattern=%d: first differing byte %zu (%02x vs %02x)\n", kernel.name,
                         long(n), pattern, at, got[at], want[at]);
            CHECK(want == got);
          }
          if (pattern == 8) {
            std::vector<float> back(static_cast<size_t>(n));
            t.dequantize_row(want.data(), back.data(), n);
            for (float v : back) CHECK(std::isfinite(v) && std::fabs(v) < 1e-30f);
          }
        }
      }
    }
  }
}
