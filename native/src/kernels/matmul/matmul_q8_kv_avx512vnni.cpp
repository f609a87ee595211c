// Q8_KV weights x Q8_KV activations, AVX512-VNNI: a streaming GEMV for n = 1, else 4
// weight rows x 4 activation rows per tile. Weights are shifted to unsigned (q + 128) for vpdpbusd; 128 * sum(a) comes off at
// the end, with sum(a) computed here rather than trusted from the row header. The
// integer dot is exact, so results are bit-identical to the scalar reference.
#include <cstring>

#include "formats/blocks.hpp"
#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/block_gemv_avx2.hpp"  // kPrefetchBytes
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {

namespace {
float row_scale(const uint8_t* row) {
  formats::RowHeaderQ8_KV h;
  std::memcpy(&h, row, sizeof h);
  return h.d;
}

template <int R, int C>
void tile(int64_t k, const uint8_t* w, size_t w_row_bytes, const uint8_t* x, size_t x_row_bytes, float* y,
          size_t y_stride) {
  const int8_t* wq[R];
  const int8_t* xq[C];
  DEEPMLA_UNROLL
  for (int r = 0; r < R; ++r) wq[r] = reinterpret_cast<const int8_t*>(w + size_t(r) * w_row_bytes) + 8;
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) xq[c] = reinterpret_cast<const int8_t*>(x + size_t(c) * x_row_bytes) + 8;
  __m512i acc[R][C], sum_a[C];
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) {
    sum_a[c] = _mm512_setzero_si512();
    DEEPMLA_UNROLL
    for (int r = 0; r < R; ++r) acc[r][c] = _mm512_setzero_si512();
  }
  const __m512i flip = _mm512_set1_epi8(char(0x80)), ones = _mm512_set1_epi8(1);
  for (int64_t j = 0; j < k; j += 64) {
    // Rows are whole multiples of 32: a last half chunk is a masked load (no fault,
    // zeros beyond the row).
    const __mmask64 mask = k - j >= 64 ? ~__mmask64(0) : __mmask64(0xffffffffu);
    __m512i u[R];
    DEEPMLA_UNROLL
    for (int r = 0; r < R; ++r) u[r] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, wq[r] + j), flip);
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) {
      const __m512i a = _mm512_maskz_loadu_epi8(mask, xq[c] + j);
      sum_a[c] = _mm512_dpbusd_epi32(sum_a[c], ones, a);
      DEEPMLA_UNROLL
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], u[r], a);
    }
  }
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) {
    const int32_t correction = 128 * hsum512_epi32(sum_a[c]);
    const float dx = row_scale(x + size_t(c) * x_row_bytes);
    DEEPMLA_UNROLL
    for (int r = 0; r < R; ++r) {
      const float dw = row_scale(w + size_t(r) * w_row_bytes);
      y[size_t(c) * y_stride + size_t(r)] = float(hsum512_epi32(acc[r][c]) - correction) * dw * dx;
    }
  }
}
const TileFn kTiles[4][4] = DEEPMLA_TILES_4x4(tile);

// n = 1: one weight row at a time, front to back, with a software prefetch ahead of the
// stream (block_gemv_avx512vnni.hpp says why); the same exact integer dot and float
// expression as the tiles.
void gemv(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x, float* y) {
  const int8_t* xq = reinterpret_cast<const int8_t*>(x) + 8;
  const __m512i flip = _mm512_set1_epi8(char(0x80)), ones = _mm512_set1_epi8(1);
  const auto mask_at = [k](int64_t j) { return k - j >= 64 ? ~__mmask64(0) : __mmask64(0xffffffffu); };
  __m512i sum_a = _mm512_setzero_si512();
  for (int64_t j = 0; j < k; j += 64) sum_a = _mm512_dpbusd_epi32(sum_a, ones, _mm512_maskz_loadu_epi8(mask_at(j), xq + j));
  const int32_t correction = 128 * hsum512_epi32(sum_a);
  const float dx = row_scale(x);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + size_t(r) * w_row_bytes;
    const int8_t* wq = reinterpret_cast<const int8_t*>(row) + 8;
    __m512i acc[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int64_t j = 0; j < k; j += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(wq + j) + kPrefetchBytes, _MM_HINT_T0);
      const __mmask64 mask = mask_at(j);
      const __m512i u = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, wq + j), flip);
      acc[(j / 64) & 1] = _mm512_dpbusd_epi32(acc[(j / 64) & 1], u, _mm512_maskz_loadu_epi8(mask, xq + j));
    }
    y[r] = float(hsum512_epi32(_mm512_add_epi32(acc[0], acc[1])) - correction) * row_scale(row) * dx;
  }
}
}  // namespace

void matmul_q8_kv_avx512vnni(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                             const uint8_t* x, size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (n == 1) {
    gemv(k, w, w_row_bytes, r0, r1, x, y);
    return;
  }
  run_tiles(kTiles, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
