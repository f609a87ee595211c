#pragma once
// Flash MLA over an int8 K cache (Q8_0, Q8_KV) with AVX512-VNNI scores: flash_mla.hpp's
// loop, except that S = q' K^T is an integer dot. At 8192 cached tokens a generated token
// does 16 heads x 8192 x 576 multiply-adds of scores per layer; vpdpbusd does 64 of them
// per instruction against 16 for an f32 FMA (Zen4 splits both into two 256-bit halves).
//
//   per call: q' = q * scale quantized per 32-value block (quantize_query_block, as the
//     reference flash_mla_quantized_q_scalar does), packed in panels of 16 rows: for
//     block b, d[16], start[16] = -128 * sum of each row's quants, and 8 registers, lane
//     r of register l holding quants 4l..4l+3 of row r;
//   per chunk of kFlashMlaChunk cache rows: the quants shifted to unsigned (u = k + 128,
//     vpdpbusd's unsigned operand; start takes 128 * sum(q) back off, exactly) with their
//     block scales, and V (the first dv values) converted to f32;
//   a score tile is 16 query rows (lanes) x 8 cache rows: per block, 8 vpdpbusd per cache
//     row on the broadcast dwords of its quants, then one FMA by d_q * d_k.
//
// Softmax is flash_mla.hpp's, on 16-wide floats; P V is the Values policy's (FloatValues
// below: flash_mla.hpp's FMAs; or flash_mla_bf16_values.hpp's bf16 dot products).
// Internal linkage: see kernels/matmul/tiling.hpp.
#include <cstring>

#include "formats/blocks.hpp"
#include "kernels/attention/flash_mla.hpp"
#include "kernels/attention/simd_avx512.hpp"
#include "kernels/matmul/avx2_util.hpp"  // sum_i8x32

namespace deepmla::kernels {
namespace {

// Cache views: block b of a row's quants and its scale.
struct CacheQ8_0 {
  static const int8_t* quants(const uint8_t* row, int64_t b) {
    return reinterpret_cast<const formats::BlockQ8_0*>(row)[b].qs;
  }
  static float scale(const uint8_t* row, int64_t b) {
    return _cvtsh_ss(reinterpret_cast<const formats::BlockQ8_0*>(row)[b].d);
  }
};

struct CacheQ8_KV {
  static const int8_t* quants(const uint8_t* row, int64_t b) {
    return reinterpret_cast<const int8_t*>(row + sizeof(formats::RowHeaderQ8_KV)) + 32 * b;
  }
  static float scale(const uint8_t* row, int64_t) {
    formats::RowHeaderQ8_KV h;
    std::memcpy(&h, row, sizeof h);
    return h.d;
  }
};

constexpr int kVnniScoreKeys = 8;  // cache rows per score tile
static_assert(kFlashMlaChunk % kVnniScoreKeys == 0, "score tiles cover a chunk");

// quantize_query_block in 16-wide vectors, with the same operations in the same order
// (so the same bytes: checked on 10^6 random blocks with ties and extreme scales): the
// op calls this once per split of the cache, for every row.
// Blocks with a non-finite value or a 1 / d overflow take the scalar function.
inline float quantize_query_block_avx512(const float* q, float scale, int8_t* out) {
  const __m512 vs = _mm512_set1_ps(scale), zero = _mm512_setzero_ps();
  const __m512 x0 = _mm512_mul_ps(_mm512_loadu_ps(q), vs), x1 = _mm512_mul_ps(_mm512_loadu_ps(q + 16), vs);
  const __mmask16 finite = _mm512_cmp_ps_mask(_mm512_mul_ps(x0, zero), zero, _CMP_EQ_OQ) &
                           _mm512_cmp_ps_mask(_mm512_mul_ps(x1, zero), zero, _CMP_EQ_OQ);
  const float amax = Avx512::hmax(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
  const float d = amax / 127.0f;
  const float id = d > 0 ? 1.0f / d : 0.0f;
  if (finite != 0xffff || !(id < std::numeric_limits<float>::infinity())) return quantize_query_block(q, scale, out);
  const __m512 vid = _mm512_set1_ps(id), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  // cvtps rounds to nearest even under the default MXCSR, as nearbyint does.
  const __m512i i0 = _mm512_cvtps_epi32(_mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_roundscale_ps(_mm512_mul_ps(x0, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))));
  const __m512i i1 = _mm512_cvtps_epi32(_mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_roundscale_ps(_mm512_mul_ps(x1, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(i0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm512_cvtepi32_epi8(i1));
  return d;
}

inline void pack_query_panels(const FlashMlaArgs& a, int64_t nb, uint8_t* panels) {
  const int64_t groups = (a.n_rows + 15) / 16;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* out = panels + size_t(g * nb + b) * kQueryPanelBlockBytes;
      float d[16];
      int32_t start[16];
      int8_t q8[16][32];
      for (int r = 0; r < 16; ++r) {
        const int64_t row = g * 16 + r;
        d[r] = row < a.n_rows ? quantize_query_block_avx512(a.q[row] + 32 * b, a.scale, q8[r]) : 0.0f;
        if (row >= a.n_rows) std::memset(q8[r], 0, 32);
        start[r] = -128 * sum_i8x32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8[r])));
      }
      std::memcpy(out, d, 64);
      std::memcpy(out + 64, start, 64);
      for (int l = 0; l < 8; ++l)
        for (int r = 0; r < 16; ++r) std::memcpy(out + 128 + 64 * l + 4 * r, q8[r] + 4 * l, 4);
    }
  }
}

// Quants of n cache rows as unsigned bytes, dk apart, and their scales, nb apart; rows
// [n, kFlashMlaChunk) are zero scales (their scores are masked anyway).
template <class Cache>
void stage_chunk(const uint8_t* k, size_t k_row_bytes, int64_t n, int64_t nb, uint8_t* ku, float* kd) {
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int64_t j = 0; j < kFlashMlaChunk; ++j) {
    uint8_t* uj = ku + j * nb * 32;
    for (int64_t b = 0; b < nb; ++b) {
      if (j < n) {
        const uint8_t* row = k + size_t(j) * k_row_bytes;
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Cache::quants(row, b)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(uj + 32 * b), _mm256_xor_si256(q, flip));
        kd[j * nb + b] = Cache::scale(row, b);
      } else {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(uj + 32 * b), flip);
        kd[j * nb + b] = 0.0f;
      }
    }
  }
}

inline __m512i broadcast_u32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Scores of panel `panel` (16 query rows) against cache rows [j, j + 8) of the chunk:
// s[r * kFlashMlaChunk + j + jj] for the panel's `rows` rows.
inline void score_tile_vnni(const uint8_t* panel, int64_t nb, const uint8_t* ku, const float* kd, int64_t j, int rows,
                            float* s) {
  constexpr int J = kVnniScoreKeys;
  __m512 acc[J];
  DEEPMLA_ATTN_UNROLL
  for (int jj = 0; jj < J; ++jj) acc[jj] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + size_t(b) * kQueryPanelBlockBytes;
    const __m512 dq = _mm512_load_ps(reinterpret_cast<const float*>(pb));
    const __m512i start = _mm512_load_si512(reinterpret_cast<const void*>(pb + 64));
    __m512i qv[8];
    DEEPMLA_ATTN_UNROLL
    for (int l = 0; l < 8; ++l) qv[l] = _mm512_load_si512(reinterpret_cast<const void*>(pb + 128 + 64 * l));
    DEEPMLA_ATTN_UNROLL
    for (int jj = 0; jj < J; ++jj) {
      const uint8_t* u = ku + ((j + jj) * nb + b) * 32;
      __m512i sum = start;
      DEEPMLA_ATTN_UNROLL
      for (int l = 0; l < 8; ++l) sum = _mm512_dpbusd_epi32(sum, broadcast_u32(u + 4 * l), qv[l]);
      const __m512 scale = _mm512_mul_ps(dq, _mm512_set1_ps(kd[(j + jj) * nb + b]));
      acc[jj] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[jj]);
    }
  }
  DEEPMLA_ATTN_UNROLL
  for (int jj = 0; jj < J; ++jj) {
    alignas(64) float out[16];
    _mm512_store_ps(out, acc[jj]);
    for (int r = 0; r < rows; ++r) s[r * kFlashMlaChunk + j + jj] = out[r];
  }
}

// The value policy of the AVX512-VNNI variants: V converted to f32, P V by FMAs
// (flash_mla_bf16_values.hpp has the AVX512-BF16 one). `region` is the layout's k region.
template <ConvertFn ConvertV>
struct FloatValues {
  static void begin(const FlashMlaArgs&, uint8_t*) {}
  static void finish(const FlashMlaArgs&, uint8_t*) {}
  static void stage(const FlashMlaArgs& a, const uint8_t* rows, int64_t n, uint8_t* region) {
    ConvertV(rows, a.k_row_bytes, n, a.dv, reinterpret_cast<float*>(region));  // [kC][dv] f32
  }
  static void accumulate(const FlashMlaArgs& a, int64_t c0, int64_t n, float* s, float* f, uint8_t* region) {
    softmax_and_accumulate<Avx512>(a, c0, n, s, f, reinterpret_cast<const float*>(region), a.dv);
  }
};

// The scores policy of the AVX512-VNNI variants: each chunk's quants staged unsigned, then
// score_tile_vnni (flash_mla_amx_scores.hpp has the AMX one).
template <class Cache>
struct VnniScores {
  static void chunk(const FlashMlaArgs& a, const uint8_t* panels, int64_t nb, const uint8_t* rows, int64_t n,
                    uint8_t* ku, float* kd, float* s) {
    stage_chunk<Cache>(rows, a.k_row_bytes, n, nb, ku, kd);
    for (int64_t g = 0; g * 16 < a.n_rows; ++g) {
      const int panel_rows = int(std::min<int64_t>(16, a.n_rows - 16 * g));
      for (int64_t j = 0; j < n; j += kVnniScoreKeys)
        score_tile_vnni(panels + size_t(g * nb) * kQueryPanelBlockBytes, nb, ku, kd, j, panel_rows, s + 16 * g * kC);
    }
  }
};

template <class Cache, class Values, class Scores = VnniScores<Cache>>
void flash_mla_run_vnni(const FlashMlaArgs& a) {
  const FlashMlaLayout lay = flash_mla_layout(a.dk, a.n_rows);
  uint8_t* values = a.scratch + lay.k;
  float* s = reinterpret_cast<float*>(a.scratch + lay.s);
  float* f = reinterpret_cast<float*>(a.scratch + lay.f);
  uint8_t* panels = a.scratch + lay.q8;
  uint8_t* ku = a.scratch + lay.ku;
  float* kd = reinterpret_cast<float*>(a.scratch + lay.kd);
  const int64_t nb = a.dk / 32, R = a.n_rows;
  int64_t end = a.j0;
  for (int64_t r = 0; r < R; ++r) end = std::max(end, std::min(a.j1, a.visible[r]));
  if (end <= a.j0) return;
  pack_query_panels(a, nb, panels);
  Values::begin(a, values);
  for (int64_t c0 = a.j0; c0 < end; c0 += kC) {
    const int64_t n = std::min(kC, end - c0);
    const uint8_t* rows = a.k + size_t(c0) * a.k_row_bytes;
    Scores::chunk(a, panels, nb, rows, n, ku, kd, s);
    Values::stage(a, rows, n, values);
    Values::accumulate(a, c0, n, s, f, values);
  }
  Values::finish(a, values);  // a policy may hold the last chunk's P V back until here
}

}  // namespace
}  // namespace deepmla::kernels
