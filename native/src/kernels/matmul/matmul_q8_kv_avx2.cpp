// Q8_KV weights x Q8_KV activations, AVX2. One scale per row, so the whole row is an
// exact int32 dot and the float part is the scalar vec_dot's own expression: results are
// bit-identical to the reference.
// - n >= kPanelMinN: 16-row panels with both sides widened to int16 and dotted by
//   vpmaddwd (the layout of block_panel_i16_avx2.hpp without the block scales), 16 x 6
//   tiles of int32 sums: with no per-block float work the tile is only vpmaddwd +
//   vpaddd, which Zen3 runs at two per cycle (the sign trick's vpsignb competes with the
//   multiplies: block_panel_i16_avx2.hpp). Zen3, 1 thread, k = 2048, max of 3-5 runs,
//   GMAC/s, sign-trick tiles -> panels: m = 2048 n = 512 59 -> 71, n = 64 60 -> 65; a
//   routed expert (m = 1408, weights from DRAM) n = 48 59 -> 64, n = 96 59 -> 68, n = 32
//   56 -> 59, n = 16 53 -> 47. A 4-layer Q8_KV bench model's pp512, 1 thread: ~170 ->
//   ~200 t/s. With the pack's transpose unrolled (i16_block_avx2.hpp, session 18): n = 48
//   64 -> 70, and the panels win from 12 rows (n = 8 47 -> 45, 12 51 -> 53, 16 54 -> 58).
// - fewer rows: 2 weight rows x 4 activation rows per tile by the sign trick, in place.
//   (An 8-row int8 panel as for Q8_0 was tried and measured slower: both do 4 integer ops
//   per 32 products and there is no per-block float work to amortise.)
// - n = 1: a streaming GEMV.
#include <cstring>
#include <vector>

#include "formats/blocks.hpp"
#include "kernels/matmul/avx2_util.hpp"
#include "kernels/matmul/block_gemv_avx2.hpp"  // kPrefetchBytes, prefetch_stream
#include "kernels/matmul/i16_block_avx2.hpp"
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

// 16 x 6 tiles: 12 int32 sums + 2 weight registers + a broadcast + a product fill the 16.
constexpr int kPanelRows = 16;
constexpr int kPanelCols = 6;
// k in slices of this many 32-value blocks (128 KiB of panel), so a panel stays in L2
// while the chunk's activations stream past; the int32 sums wait in `partial` between.
constexpr int64_t kSliceBlocks = 128;
// Below this many activation rows the in-place tiles win (no packing; measured above).
constexpr int64_t kPanelMinN = 12;

const int8_t* row_values(const uint8_t* row) { return reinterpret_cast<const int8_t*>(row + sizeof(RowHeaderQ8_KV)); }

// Blocks [b0, b0 + nb) of `rows` (<= 16) weight rows (i16_block_avx2.hpp's layout);
// missing rows are zeros.
void pack_panel(int64_t b0, int64_t nb, const uint8_t* w, size_t w_row_bytes, int rows, uint8_t* panel) {
  const int8_t* wq[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) wq[r] = row_values(w + size_t(r < rows ? r : 0) * w_row_bytes);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t j = 32 * (b0 + b);
    store_i16_block(
        [&](int r) {
          return r < rows ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq[r] + j)) : _mm256_setzero_si256();
        },
        panel + size_t(b) * kI16BlockBytes);
  }
}

// Per thread: a chunk's activations widened to int16 (row i at values[i * k]), their row
// scales, and the int32 sums of 16 weight rows per activation row between k slices.
struct PanelScratchQ8KV {
  std::vector<int16_t> values;
  std::vector<float> scales;
  std::vector<int32_t> partial;
  static PanelScratchQ8KV& of_this_thread() {
    static thread_local PanelScratchQ8KV s;
    return s;
  }
  void widen(int64_t k, const uint8_t* x, size_t x_row_bytes, int64_t n) {
    if (values.size() < size_t(k * n)) values.resize(size_t(k * n));
    if (scales.size() < size_t(n)) scales.resize(size_t(n));
    if (partial.size() < size_t(n) * kPanelRows) partial.resize(size_t(n) * kPanelRows);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* row = x + size_t(i) * x_row_bytes;
      scales[size_t(i)] = row_scale(row);
      for (int64_t j = 0; j < k; j += 32) widen_32_values(row_values(row) + j, values.data() + size_t(i * k + j));
    }
  }
};

// 16 panel rows x C activation rows over the slice's nb blocks. The int32 sums start
// from `partial` unless `first`, go back there unless `last`; on the last slice the
// `rows` (<= 16) outputs per activation row are float(sum) * dw * dx, as in the scalar.
// a: the first activation row's values at the slice (rows k apart); dx: its scale.
template <int C>
void panel_tile(int64_t nb, const uint8_t* panel, const int16_t* a, int64_t k, const float* dx, int32_t* partial,
                bool first, bool last, const float* dw, int rows, float* y, size_t y_stride, PanelPrefetcher& pf) {
  constexpr int R = kPanelRows;
  __m256i sum[C][2];
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) {
    for (int h = 0; h < 2; ++h)
      sum[c][h] = first ? _mm256_setzero_si256()
                        : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(partial + R * c + 8 * h));
  }
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i* q = reinterpret_cast<const __m256i*>(panel + size_t(b) * kI16BlockBytes);
    pf.step();
    madd_i16_block<C>(q, a + 32 * b, k, sum);
  }
  if (!last) {
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c)
      for (int h = 0; h < 2; ++h) _mm256_storeu_si256(reinterpret_cast<__m256i*>(partial + R * c + 8 * h), sum[c][h]);
    return;
  }
  const __m256 dw0 = _mm256_loadu_ps(dw), dw1 = _mm256_loadu_ps(dw + 8);
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) {
    const __m256 d = _mm256_set1_ps(dx[c]);
    alignas(32) float out[R];
    _mm256_store_ps(out, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum[c][0]), dw0), d));
    _mm256_store_ps(out + 8, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum[c][1]), dw1), d));
    float* yc = y + size_t(c) * y_stride;
    if (rows == R) {
      std::memcpy(yc, out, sizeof out);
    } else {
      for (int r = 0; r < rows; ++r) yc[r] = out[r];
    }
  }
}

// run_i16_panels with 6-column tiles; the int32 sums of a panel's earlier slices wait in
// `partial`.
void run_panels(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  constexpr int R = kPanelRows, C = kPanelCols;
  using PanelTileFn = void (*)(int64_t, const uint8_t*, const int16_t*, int64_t, const float*, int32_t*, bool, bool,
                               const float*, int, float*, size_t, PanelPrefetcher&);
  static constexpr PanelTileFn tiles[C + 1] = {nullptr,          panel_tile<1>, panel_tile<2>, panel_tile<3>,
                                               panel_tile<4>, panel_tile<5>, panel_tile<6>};
  const int64_t nb = k / 32;
  uint8_t* panel =
      PanelScratch<32, char>::of_this_thread().panel_bytes(size_t(slice_blocks_of(nb, kSliceBlocks)) * kI16BlockBytes);
  PanelScratchQ8KV& s = PanelScratchQ8KV::of_this_thread();
  float dw[R];  // the panel's row scales, taken with its first slice
  run_i16_panels<C>(
      nb, kSliceBlocks, w, w_row_bytes, sizeof(RowHeaderQ8_KV), 32, r0, r1, x_row_bytes, n,
      [&](int64_t i0, int64_t i1) { s.widen(k, x + size_t(i0) * x_row_bytes, x_row_bytes, i1 - i0); },
      [&](int64_t r, int rows, int64_t b0, int64_t sb) {
        if (b0 == 0)
          for (int j = 0; j < R; ++j) dw[j] = j < rows ? row_scale(w + size_t(r + j) * w_row_bytes) : 0.0f;
        pack_panel(b0, sb, w + size_t(r) * w_row_bytes, w_row_bytes, rows, panel);
      },
      [&](int64_t i0, int64_t i, int cols, int64_t r, int rows, int64_t b0, int64_t sb, PanelPrefetcher& pf) {
        tiles[cols](sb, panel, s.values.data() + size_t(i * k + 32 * b0), k, s.scales.data() + i,
                    s.partial.data() + size_t(i) * R, b0 == 0, b0 + sb >= nb, dw, rows,
                    y + size_t(i0 + i) * y_stride + size_t(r), y_stride, pf);
      });
}

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
  if (n >= kPanelMinN) {
    run_panels(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
    return;
  }
  run_tiles(kTiles, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
