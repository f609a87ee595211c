// Q8_KV weights x Q8_KV activations, AVX512-VNNI: a streaming GEMV for n = 1, packed
// activation panels for more. The integer dot is exact (and so are its corrections
// below), so results are bit-identical to the scalar reference.
//
// One scale per row makes the whole dot over k one int32, with no float work per block.
// The 4 x 4 in-place tiles this replaced spent, per 16 vpdpbusd, 4 shifts of the weights
// to unsigned (q + 128), 4 vpdpbusd for sum(a) and 8 loads. The panels keep only the
// vpdpbusd: activation rows are packed 16 to a panel (block_panel_avx512vnni.hpp's
// layout: register l of a 32-value group holds quants 4l..4l+3 of the 16 rows, row c in
// lane c), shifted to unsigned (a + 128: the quantizer's activations are in -127..127);
// each weight dword, signed as stored, is broadcast against them; 128 * sum(w) of each
// weight row, summed here and not taken from the row header, comes off at the end. A lane
// may wrap on long rows, harmlessly, as in the GEMV: vpdpbusd adds mod 2^32, and the true
// dot (at most 128 * 127 * k) fits an int32 wherever the scalar reference's does.
// Zen5, 1 thread, k = 2048, m = 1408, weights from DRAM, tiles -> panels, GMAC/s: n = 2
// 22 -> 28, n = 4 29 -> 55, n = 16 69 -> 218-240, n = 48 111 -> 370-406, n = 512 127 ->
// 385-429.
#include <algorithm>
#include <cstring>

#include "formats/blocks.hpp"
#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/block_gemv_avx2.hpp"  // kPrefetchBytes, prefetch_stream
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {

namespace {
float row_scale(const uint8_t* row) {
  formats::RowHeaderQ8_KV h;
  std::memcpy(&h, row, sizeof h);
  return h.d;
}

// Bytes [j, j + 64) of a row's quants: rows are whole multiples of 32, so a last half is
// a masked load (no fault, zeros beyond the row).
__mmask64 quants_mask(int64_t k, int64_t j) { return k - j >= 64 ? ~__mmask64(0) : __mmask64(0xffffffffu); }

// n = 1: one weight row at a time, front to back, with a software prefetch ahead of the
// stream (block_gemv_avx512vnni.hpp says why); the same exact integer dot and float
// expression as the panels.
void gemv(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x, float* y) {
  const int8_t* xq = reinterpret_cast<const int8_t*>(x) + 8;
  const __m512i flip = _mm512_set1_epi8(char(0x80)), ones = _mm512_set1_epi8(1);
  __m512i sum_a = _mm512_setzero_si512();
  for (int64_t j = 0; j < k; j += 64) sum_a = _mm512_dpbusd_epi32(sum_a, ones, _mm512_maskz_loadu_epi8(quants_mask(k, j), xq + j));
  const int32_t correction = 128 * hsum512_epi32(sum_a);
  const float dx = row_scale(x);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + size_t(r) * w_row_bytes;
    const int8_t* wq = reinterpret_cast<const int8_t*>(row) + 8;
    __m512i acc[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int64_t j = 0; j < k; j += 64) {
      prefetch_stream(reinterpret_cast<const char*>(wq + j) + kPrefetchBytes);
      const __mmask64 mask = quants_mask(k, j);
      const __m512i u = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, wq + j), flip);
      acc[(j / 64) & 1] = _mm512_dpbusd_epi32(acc[(j / 64) & 1], u, _mm512_maskz_loadu_epi8(mask, xq + j));
    }
    y[r] = float(hsum512_epi32(_mm512_add_epi32(acc[0], acc[1])) - correction) * row_scale(row) * dx;
  }
}
// Packed activations: per panel of 16 rows, float d[16], then per 32-value group 8 x 64
// bytes (unsigned quants, dword lanes). Even 2 rows (1/8 of the lanes) beat the tiles.
// (28 vs 22 GMAC/s above), so every n >= 2 takes them.
constexpr int kKvPanelRows = 16;
// 18 sums + 3 panel registers + a broadcast. 8 rows (24 sums) ran at less than half the
// speed in cache (157 vs 359 GMAC/s at n = 48), 4 rows 10-20% slower than 6.
constexpr int kKvTileRows = 6, kKvTilePanels = 3;
// Packed activations a call keeps, as block_actpanel_avx512vnni.hpp's budget: they stay
// in L2 while the weight rows stream by once per chunk of them.
constexpr size_t kKvPanelBudgetBytes = size_t(512) << 10;

size_t kv_panel_bytes(int64_t k) { return 64 + size_t(k) * kKvPanelRows; }

void pack_kv_panels(int64_t k, const uint8_t* x, size_t x_row_bytes, int64_t n, uint8_t* panels) {
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int64_t g = 0; g * kKvPanelRows < n; ++g) {
    uint8_t* out = panels + size_t(g) * kv_panel_bytes(k);
    const int rows = int(std::min<int64_t>(kKvPanelRows, n - g * kKvPanelRows));
    const uint8_t* xr[kKvPanelRows];
    float d[kKvPanelRows];
    for (int r = 0; r < kKvPanelRows; ++r) {
      xr[r] = x + size_t(g * kKvPanelRows + (r < rows ? r : 0)) * x_row_bytes;
      d[r] = r < rows ? row_scale(xr[r]) : 0.0f;  // missing rows: lanes that add nothing
    }
    std::memcpy(out, d, sizeof d);
    for (int64_t j = 0; j < k; j += 32) {
      __m256i v[kKvPanelRows];
      for (int r = 0; r < kKvPanelRows; ++r)
        v[r] = r < rows ? _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[r] + 8 + j)), flip)
                        : _mm256_setzero_si256();
      store_dword_lanes_16x32(v, out + 64 + size_t(j) * kKvPanelRows);
    }
  }
}

// 128 * sum of a weight row's quants (exact: |sum| <= 128 k).
int32_t weight_row_correction(int64_t k, const uint8_t* row) {
  const int8_t* q = reinterpret_cast<const int8_t*>(row) + 8;
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i s = _mm512_setzero_si512();
  for (int64_t j = 0; j < k; j += 64) {
    s = _mm512_dpbusd_epi32(s, ones, _mm512_maskz_loadu_epi8(quants_mask(k, j), q + j));
  }
  return 128 * hsum512_epi32(s);
}

// R weight rows (in place) x P panels (panel_bytes apart): writes y[c * y_stride + r]
// for the 16 rows of the first P - 1 panels and `cols` of the last.
template <int R, int P>
void kv_panel_tile(int64_t k, const uint8_t* w, size_t w_row_bytes, const int32_t* correction, const uint8_t* panels,
                   size_t panel_bytes, int cols, float* y, size_t y_stride, PanelPrefetcher& pf) {
  const int8_t* wq[R];
  DEEPMLA_UNROLL
  for (int r = 0; r < R; ++r) wq[r] = reinterpret_cast<const int8_t*>(w + size_t(r) * w_row_bytes) + 8;
  __m512i sum[R][P];
  DEEPMLA_UNROLL
  for (int r = 0; r < R; ++r)
    DEEPMLA_UNROLL
    for (int p = 0; p < P; ++p) sum[r][p] = _mm512_setzero_si512();
  for (int64_t j = 0; j < k; j += 32) {
    pf.step();
    const uint8_t* pj = panels + 64 + size_t(j) * kKvPanelRows;
    DEEPMLA_UNROLL
    for (int l = 0; l < 8; ++l) {
      __m512i a[P];
      DEEPMLA_UNROLL
      for (int p = 0; p < P; ++p) a[p] = _mm512_load_si512(reinterpret_cast<const void*>(pj + p * panel_bytes + 64 * l));
      DEEPMLA_UNROLL
      for (int r = 0; r < R; ++r) {
        int32_t v;
        std::memcpy(&v, wq[r] + j + 4 * l, 4);
        const __m512i b = _mm512_set1_epi32(v);
        DEEPMLA_UNROLL
        for (int p = 0; p < P; ++p) sum[r][p] = _mm512_dpbusd_epi32(sum[r][p], a[p], b);
      }
    }
  }
  alignas(64) float out[R][P * kKvPanelRows];
  DEEPMLA_UNROLL
  for (int p = 0; p < P; ++p) {
    const __m512 dx = _mm512_load_ps(reinterpret_cast<const float*>(panels + p * panel_bytes));
    DEEPMLA_UNROLL
    for (int r = 0; r < R; ++r) {
      // float(dot) * dw * dx, in the scalar vec_dot's order.
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(sum[r][p], _mm512_set1_epi32(correction[r])));
      const __m512 v = _mm512_mul_ps(_mm512_mul_ps(dot, _mm512_set1_ps(row_scale(w + size_t(r) * w_row_bytes))), dx);
      _mm512_store_ps(out[r] + p * kKvPanelRows, v);
    }
  }
  const int total = (P - 1) * kKvPanelRows + cols;
  for (int c = 0; c < total; ++c)
    for (int r = 0; r < R; ++r) y[size_t(c) * y_stride + size_t(r)] = out[r][c];
}

using KvPanelTileFn = void (*)(int64_t, const uint8_t*, size_t, const int32_t*, const uint8_t*, size_t, int, float*,
                               size_t, PanelPrefetcher&);
template <int R>
constexpr KvPanelTileFn kKvTiles[kKvTilePanels] = {kv_panel_tile<R, 1>, kv_panel_tile<R, 2>, kv_panel_tile<R, 3>};

void run_kv_panels(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                   size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (r1 <= r0 || n <= 0) return;
  static constexpr const KvPanelTileFn* tiles[kKvTileRows] = {kKvTiles<1>, kKvTiles<2>, kKvTiles<3>,
                                                               kKvTiles<4>, kKvTiles<5>, kKvTiles<6>};
  const size_t panel_bytes = kv_panel_bytes(k);
  const int64_t chunk_panels = std::max<int64_t>(1, int64_t(kKvPanelBudgetBytes / panel_bytes));
  const int64_t chunk = chunk_panels * kKvPanelRows;
  auto& s = PanelScratch<64, int32_t>::of_this_thread();
  uint8_t* packed = s.panel_bytes(size_t(std::min(chunk_panels, (n + kKvPanelRows - 1) / kKvPanelRows)) * panel_bytes);
  int32_t* correction = s.metas(size_t(r1 - r0));
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int64_t cn = std::min(chunk, n - i0), panels = (cn + kKvPanelRows - 1) / kKvPanelRows;
    const int64_t groups = (panels + kKvTilePanels - 1) / kKvTilePanels;
    pack_kv_panels(k, x + size_t(i0) * x_row_bytes, x_row_bytes, cn, packed);
    PanelPrefetcher pf;
    for (int64_t r = r0; r < r1; r += kKvTileRows) {
      const int rows = int(std::min<int64_t>(kKvTileRows, r1 - r));
      // The next rows into L2 while these tiles read theirs (in place, from DRAM when
      // they are a routed expert's): without it, n = 48 with the weights from DRAM ran at
      // 260 GMAC/s against 400 (Zen5, 1 thread, k = 2048).
      pf.reset(w + size_t(r + kKvTileRows) * w_row_bytes, w_row_bytes, next_panel_rows(r + kKvTileRows, r1, kKvTileRows),
               groups * (k / 32));
      // Summed with the first chunk, when the rows are on their way to the tiles anyway
      // (a pass of its own over every row first read them twice from DRAM).
      if (i0 == 0)
        for (int q = 0; q < rows; ++q) correction[r + q - r0] = weight_row_correction(k, w + size_t(r + q) * w_row_bytes);
      for (int64_t g = 0, p = 0; g < groups; ++g) {
        const int np = even_share(panels - p, groups - g);
        const int cols = int(std::min<int64_t>(kKvPanelRows, cn - (p + np - 1) * kKvPanelRows));
        tiles[rows - 1][np - 1](k, w + size_t(r) * w_row_bytes, w_row_bytes, correction + (r - r0),
                                packed + size_t(p) * panel_bytes, panel_bytes, cols,
                                y + size_t(i0 + p * kKvPanelRows) * y_stride + size_t(r), y_stride, pf);
        p += np;
      }
    }
  }
}
}  // namespace

void matmul_q8_kv_avx512vnni(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                             const uint8_t* x, size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (n == 1) {
    gemv(k, w, w_row_bytes, r0, r1, x, y);
    return;
  }
  run_kv_panels(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
