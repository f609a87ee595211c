// Q8_KV weights x Q8_KV activations, AVX2: 2 weight rows x 4 activation rows per tile;
// a streaming GEMV for one activation row. (An 8-row interleaved panel as for Q8_0 was
// tried and measured slower here: with one scale per row the tile has no per-block
// float work to amortise, and both do 4 integer ops per 32 products.)
// One scale per row, so the whole row is an exact int32 dot and the float part is the
// scalar vec_dot's own expression: results are bit-identical to the reference.
#include <cstring>

#include "formats/blocks.hpp"
#include "kernels/matmul/avx2_util.hpp"
#include "kernels/matmul/block_gemv_avx2.hpp"  // kPrefetchBytes, prefetch_stream
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {

namespace {
using formats::RowHeaderQ8_KV;

float row_scale(const uint8_t* row) {
  RowHeaderQ8_KV h;
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
  __m256i acc[R][C];
  DEEPMLA_UNROLL
  for (int r = 0; r < R; ++r)
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_si256();
  for (int64_t j = 0; j < k; j += 32) {
    __m256i q[R], q_abs[R];
    DEEPMLA_UNROLL
    for (int r = 0; r < R; ++r) {
      q[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq[r] + j));
      q_abs[r] = _mm256_abs_epi8(q[r]);
    }
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[c] + j));
      DEEPMLA_UNROLL
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_add_epi32(acc[r][c], dot_i8x32(q_abs[r], q[r], a));
    }
  }
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) {
    const float dx = row_scale(x + size_t(c) * x_row_bytes);
    DEEPMLA_UNROLL
    for (int r = 0; r < R; ++r) {
      const float dw = row_scale(w + size_t(r) * w_row_bytes);
      y[size_t(c) * y_stride + size_t(r)] = float(hsum_epi32(acc[r][c])) * dw * dx;
    }
  }
}
const TileFn kTiles[2][4] = DEEPMLA_TILES_2x4(tile);

// GEMV: one row at a time (the thread's rows are one sequential stream), 128 bytes per
// step into 4 independent int32 accumulators, a software prefetch 2 KiB ahead (see
// block_gemv_avx2.hpp), and the row's int32 sum scaled once.
void gemv(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x, float* y) {
  const int8_t* xq = reinterpret_cast<const int8_t*>(x) + 8;
  const float dx = row_scale(x);
  const int64_t k128 = k - k % 128;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + size_t(r) * w_row_bytes;
    const int8_t* wq = reinterpret_cast<const int8_t*>(row) + 8;
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int64_t j = 0; j < k128; j += 128) {
      prefetch_stream(reinterpret_cast<const char*>(wq + j) + kPrefetchBytes);
      prefetch_stream(reinterpret_cast<const char*>(wq + j) + kPrefetchBytes + 64);
      DEEPMLA_UNROLL
      for (int u = 0; u < 4; ++u) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + j + 32 * u));
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + j + 32 * u));
        acc[u] = _mm256_add_epi32(acc[u], dot_i8x32(_mm256_abs_epi8(q), q, a));
      }
    }
    for (int64_t j = k128; j < k; j += 32) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + j));
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + j));
      acc[0] = _mm256_add_epi32(acc[0], dot_i8x32(_mm256_abs_epi8(q), q, a));
    }
    const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]), _mm256_add_epi32(acc[2], acc[3]));
    y[r] = float(hsum_epi32(sum)) * row_scale(row) * dx;  // the scalar vec_dot's expression
  }
}

}  // namespace

void matmul_q8_kv_avx2(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                       size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (n == 1) {
    gemv(k, w, w_row_bytes, r0, r1, x, y);
    return;
  }
  run_tiles(kTiles, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
