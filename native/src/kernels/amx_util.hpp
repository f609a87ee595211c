#pragma once
// Tile configuration for the AMX kernels (files *_amx.cpp, built with -mamx-tile
// -mamx-bf16 -mamx-int8): ldtilecfg's 64-byte operand and a helper that fills it.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include <immintrin.h>

#include <cstdint>

namespace deepmla::kernels {
namespace {

// Palette 1, then bytes per row and rows of each of the 8 tile registers.
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};

  // Tile t: `rows` rows of 64 bytes (16 f32, 32 bf16).
  AmxTileConfig& tile(int t, int n_rows) {
    colsb[t] = 64;
    rows[t] = uint8_t(n_rows);
    return *this;
  }
  void load() const { _tile_loadconfig(this); }
};

}  // namespace
}  // namespace deepmla::kernels
