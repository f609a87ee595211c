#pragma once
// P V of the int8-cache flash MLA (flash_mla_vnni.hpp) on AMX tiles: the products of
// flash_mla_bf16_values.hpp (weights bf16(P d) per channel block, the quants exact in
// bf16), summed by tdpbf16ps instead of vdpbf16ps. A generated token's 16 heads are one
// tile's 16 rows, so a chunk's 32 keys x 16 channels for 16 rows is one instruction where
// the vector loop takes 16 broadcasts and 32 vdpbf16ps.
//
// Per chunk of 32 keys and group of <= 16 query rows:
//   acc rows whose softmax factor f is not 1 are scaled first (f is exactly 1 once a
//     row's running max stops moving, most chunks at long context);
//   per channel block cb (32 channels): A = bf16(P d[:, cb]), rows x 32 keys in key order
//     (pair p = keys 2p, 2p + 1: tdpbf16ps's K pairs); B = the staged values vt, whose
//     rows are key pairs and dwords channels, read in place at a stride of dv dwords;
//     C = acc's 32 channels of the rows, loaded, accumulated and stored back as 2 tiles.
// Tile registers: C 0-1 (rows x 16 channels), A 2, B 3-4.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include "kernels/amx_util.hpp"
#include "kernels/attention/flash_mla_bf16_values.hpp"

namespace deepmla::kernels {
namespace {

template <class Cache>
struct AmxValues {
  static void stage(const FlashMlaArgs& a, const uint8_t* rows, int64_t n, uint8_t* region) {
    Bf16Values<Cache>::stage(a, rows, n, region);
  }

  static void accumulate(const FlashMlaArgs& a, int64_t c0, int64_t n, float* s, float* f, uint8_t* region) {
    softmax_rows<Avx512>(a, c0, n, s, f);
    const uint8_t* vt = reinterpret_cast<const uint8_t*>(Bf16Values<Cache>::vt_of(region));
    const float* vd = Bf16Values<Cache>::vd_of(a, region);
    uint8_t* w = weights_of(a, region);
    const int64_t nbv = a.dv / 32, R = a.n_rows;
    const size_t acc_bytes = a.acc_stride * 4, vt_bytes = size_t(a.dv) * 4;
    for (int64_t r0 = 0; r0 < R; r0 += 16) {
      const int rows = int(std::min<int64_t>(16, R - r0));
      AmxTileConfig().tile(0, rows).tile(1, rows).tile(2, rows).tile(3, 16).tile(4, 16).load();
      float* acc = a.acc + size_t(r0) * a.acc_stride;
      for (int r = 0; r < rows; ++r) {
        const float fr = f[r0 + r];
        if (fr == 1.0f) continue;
        const __m512 fv = _mm512_set1_ps(fr);
        float* ar = acc + size_t(r) * a.acc_stride;
        for (int64_t c = 0; c < a.dv; c += 16) _mm512_storeu_ps(ar + c, _mm512_mul_ps(_mm512_loadu_ps(ar + c), fv));
      }
      const float* p = s + r0 * kC;
      for (int64_t cb = 0; cb < nbv; ++cb) {
        const __m512 d0 = _mm512_loadu_ps(vd + cb * kC), d1 = _mm512_loadu_ps(vd + cb * kC + 16);
        for (int r = 0; r < rows; ++r) {
          const float* pr = p + r * kC;
          const __m512bh wr =
              _mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_loadu_ps(pr + 16), d1), _mm512_mul_ps(_mm512_loadu_ps(pr), d0));
          _mm512_store_si512(reinterpret_cast<void*>(w + r * 64), bf16_as_int(wr));
        }
        float* c = acc + cb * 32;
        const uint8_t* v = vt + cb * 128;
        _tile_loadd(2, w, 64);
        _tile_loadd(0, c, acc_bytes);
        _tile_loadd(1, c + 16, acc_bytes);
        _tile_loadd(3, v, vt_bytes);
        _tile_loadd(4, v + 64, vt_bytes);
        _tile_dpbf16ps(0, 2, 3);
        _tile_dpbf16ps(1, 2, 4);
        _tile_stored(0, c, acc_bytes);
        _tile_stored(1, c + 16, acc_bytes);
      }
    }
    _tile_release();
  }

  // After vt and vd in the layout's k region: one A tile (16 rows of 64 bytes).
  static uint8_t* weights_of(const FlashMlaArgs& a, uint8_t* region) {
    return region + align64(size_t(kC * a.dv) * 2 + size_t(a.dv / 32) * size_t(kC) * 4);
  }
};

}  // namespace
}  // namespace deepmla::kernels
