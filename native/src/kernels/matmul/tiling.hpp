#pragma once
// The loop nest shared by the SIMD matmul variants. A variant supplies a table of tile
// functions, tiles[R - 1][C - 1] computing R weight rows x C activation rows (each over
// the whole k), and run_tiles walks [r0, r1) x [0, n) with them:
//
//   for each chunk of activation rows that fits in cache (kChunkBytes):
//     for each group of MR weight rows:
//       for each group of NC activation rows in the chunk: one tile
//
// so a weight row group is read from memory once per chunk and reused from L1 across
// the chunk, and the chunk's activations stay in cache while all weight rows stream by.
// GEMV (n = 1) degenerates to streaming W once; GEMM (n up to 512) reads W n/chunk times.
//
// Everything here has internal linkage on purpose: this header is compiled into files
// with different -m flags, and an inline function with external linkage could be merged
// across them by the linker, running AVX512 code on an AVX2 machine.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/unroll.hpp"

namespace deepmla::kernels {
namespace {

// Tile: rows w, w + w_row_bytes, ...; activation rows x, x + x_row_bytes, ...;
// writes y[c * y_stride + r] for r < R, c < C.
using TileFn = void (*)(int64_t k, const uint8_t* w, size_t w_row_bytes, const uint8_t* x, size_t x_row_bytes,
                        float* y, size_t y_stride);

// Activation bytes a chunk may hold when the tiles read weights in place (run_tiles):
// about half of a 512 KiB..2 MiB L2.
constexpr size_t kChunkBytes = size_t(192) << 10;

// The same for the panel kernels, which pack every weight panel again for each chunk;
// a pack costs about a third of an 8 x 4 tile. With L2-sized chunks a 512-row
// micro-batch packed each panel 6 times (k = 2048) or 32 times (k = 10944: 89 GMAC/s).
// Activations read from L3 keep up with the tiles (a tile reads ~7 GB/s of them), so one
// chunk per micro-batch: Zen3, 2 threads, n = 512: k = 2048 108 -> 115 GMAC/s, k = 10944
// 89 -> 112-120. (run_tiles' float tiles lose half their speed with chunks this large.)
// The cap keeps a chunk within a shared L3 for very long rows or micro-batches.
constexpr size_t kPanelChunkBytes = size_t(8) << 20;

// Activation rows per chunk: as many as fit in `budget` bytes, a multiple of the tile
// width `cols` (at least one tile), at most n.
inline int64_t chunk_rows(size_t budget, size_t x_row_bytes, int64_t n, int cols) {
  int64_t chunk = x_row_bytes ? int64_t(budget / x_row_bytes) : n;
  chunk = chunk < cols ? cols : chunk - chunk % cols;
  return chunk < n ? chunk : n;
}

// Per-thread scratch of a panel kernel (packed weight panel, Align-byte aligned, and one
// Meta per activation block of a chunk), grown on demand and kept: a call allocates
// nothing in steady state.
template <size_t Align, class Meta>
struct PanelScratch {
  struct alignas(Align) Unit {
    uint8_t b[Align];
  };
  std::vector<Unit> panel;  // aligned by C++17 aligned new
  std::vector<Meta> meta;

  static PanelScratch& of_this_thread() {
    static thread_local PanelScratch scratch;
    return scratch;
  }
  uint8_t* panel_bytes(size_t bytes) {
    const size_t units = (bytes + Align - 1) / Align;
    if (panel.size() < units) panel.resize(units);
    return reinterpret_cast<uint8_t*>(panel.data());
  }
  Meta* metas(size_t count) {
    if (meta.size() < count) meta.resize(count);
    return meta.data();
  }
};

// Brings the weight rows of the next panel into L2 a few cache lines at a time while the
// current panel's tiles run, so that packing it does not wait on memory. Dense weights are
// reused by hundreds of activation rows and barely notice; a routed expert's weights,
// read from DRAM for the ~50 tokens that chose it, made the pack a latency stall
// (Zen5, 1 thread, k = 2048, n = 48: 208 GMAC/s with the weights in cache, 130 from DRAM).
class PanelPrefetcher {
 public:
  // `steps`: how many step() calls the current panel's tiles will make; `span`: the bytes
  // of each row the panel reads (a k slice of it; the whole row by default).
  void reset(const uint8_t* w, size_t row_bytes, int rows, int64_t steps, size_t span = 0) {
    w_ = w, row_bytes_ = row_bytes, rows_ = rows, row_ = 0, line_ = 0;
    lines_per_row_ = int64_t(((span ? span : row_bytes) + 127) / 64);  // a row need not start on a line
    const int64_t total = lines_per_row_ * rows;
    per_step_ = steps > 0 ? (total + steps - 1) / steps : total;
  }
  void step() {
    for (int64_t j = 0; j < per_step_ && row_ < rows_; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(w_ + size_t(row_) * row_bytes_ + size_t(line_) * 64), _MM_HINT_T1);
      if (++line_ == lines_per_row_) line_ = 0, ++row_;
    }
  }

 private:
  const uint8_t* w_ = nullptr;
  size_t row_bytes_ = 0;
  int rows_ = 0, row_ = 0;
  int64_t line_ = 0, lines_per_row_ = 0, per_step_ = 0;
};

// The next of `parts_left` tiles' share of `left` activation panels, spread evenly (4
// panels over 2 tiles are 2 + 2, not 3 + 1: a 1-panel tile does one vpdpbusd per
// broadcast).
inline int even_share(int64_t left, int64_t parts_left) { return int((left + parts_left - 1) / parts_left); }

// Rows of the panel that starts at `next` (0 past r1).
inline int next_panel_rows(int64_t next, int64_t r1, int panel_rows) {
  return next >= r1 ? 0 : r1 - next < panel_rows ? int(r1 - next) : panel_rows;
}

template <int MR, int NC>
void run_tiles(const TileFn (&tiles)[MR][NC], int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1,
               const uint8_t* x, size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  const int64_t chunk = chunk_rows(kChunkBytes, x_row_bytes, n, NC);
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int64_t i1 = n - i0 < chunk ? n : i0 + chunk;
    for (int64_t r = r0; r < r1; r += MR) {
      const int64_t rows = r1 - r < MR ? r1 - r : MR;
      for (int64_t i = i0; i < i1; i += NC) {
        const int64_t cols = i1 - i < NC ? i1 - i : NC;
        tiles[rows - 1][cols - 1](k, w + size_t(r) * w_row_bytes, w_row_bytes, x + size_t(i) * x_row_bytes,
                                  x_row_bytes, y + size_t(i) * y_stride + size_t(r), y_stride);
      }
    }
  }
}

}  // namespace
}  // namespace deepmla::kernels

// Tile tables from a function template tile<R, C> (2 x 4, 4 x 2 and 4 x 4 shapes).
#define DEEPMLA_TILES_2x4(tile) \
  { {tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>}, {tile<2, 1>, tile<2, 2>, tile<2, 3>, tile<2, 4>} }
#define DEEPMLA_TILES_4x2(tile)                                                                        \
  {                                                                                                    \
    {tile<1, 1>, tile<1, 2>}, {tile<2, 1>, tile<2, 2>}, {tile<3, 1>, tile<3, 2>}, {tile<4, 1>, tile<4, 2>} \
  }
#define DEEPMLA_TILES_4x4(tile)                                                        \
  {                                                                                    \
    {tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>}, {tile<2, 1>, tile<2, 2>, tile<2, 3>, tile<2, 4>}, \
        {tile<3, 1>, tile<3, 2>, tile<3, 3>, tile<3, 4>}, {                            \
      tile<4, 1>, tile<4, 2>, tile<4, 3>, tile<4, 4>                                   \
    }                                                                                  \
  }
