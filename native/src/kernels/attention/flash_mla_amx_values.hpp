#pragma once
// P V of the int8-cache flash MLA (flash_mla_vnni.hpp) on AMX tiles: the products of
// flash_mla_bf16_values.hpp (weights bf16(P d) per channel block, the quants exact in
// bf16), summed by tdpbf16ps instead of vdpbf16ps. A generated token's 16 heads are one
// tile's 16 rows, so a chunk's 32 keys x 16 channels for 16 rows is one instruction where
// the vector loop takes 16 broadcasts and 32 vdpbf16ps.
//
// Per group of <= 16 query rows and channel block cb (32 channels):
//   A = bf16(P d[:, cb]), rows x 32 keys in key order (pair p = keys 2p, 2p + 1:
//     tdpbf16ps's K pairs); B = the staged values vt, whose rows are key pairs and dwords
//     channels, read in place at a stride of dv dwords; C = acc's 32 channels of the
//     rows, loaded, accumulated and stored back as 2 tiles.
// acc moves through C once per dim group and pass, as much memory traffic as the tile
// products themselves take time (a quarter of the kernel), so where the scratch holds two
// chunks (up to 16 rows: a generated token's heads) a chunk's P V waits for the next one
// and a pass does both: acc (f1 f2) + (P1 f2) V1 + P2 V2 equals the one-chunk steps
// acc f1 + P1 V1, then f2 and + P2 V2 (f2 enters P1's bf16 rounding, within the same bound).
// acc rows are rescaled only where the factor is not 1 (a row's running max has stopped
// moving: most chunks at long context).
// Tile registers: C 0-1 (rows x 16 channels), then per chunk A and 2 B: 2-4 and 5-7.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include <cstring>

#include "kernels/amx_util.hpp"
#include "kernels/attention/flash_mla_bf16_values.hpp"

namespace deepmla::kernels {
namespace {

template <class Cache>
struct AmxValues {
  // The layout's k region: two staged chunks (vt, then vd), an A tile, and for a held-back
  // chunk its P and f, then the state.
  struct Region {
    size_t chunk, w, p, f, state, total;
  };
  struct State {
    int32_t pending, buffer;
  };
  static Region region_of(const FlashMlaArgs& a) {
    Region l;
    l.chunk = align64(size_t(kC * a.dv) * 2 + size_t(a.dv / 32) * size_t(kC) * 4);
    l.w = 2 * l.chunk;
    l.p = l.w + 1024;
    l.f = l.p + align64(size_t(a.n_rows * kC) * 4);
    l.state = l.f + align64(size_t(a.n_rows) * 4);
    l.total = l.state + 64;
    return l;
  }
  // A staged chunk and its softmax weights; `extra`, if set, a per-row factor on them.
  struct Chunk {
    uint8_t* staged;
    const float* p;
    const float* extra;
  };

  static bool holds_back(const FlashMlaArgs& a) {
    return a.n_rows <= 16 && region_of(a).total <= size_t(kC * a.dk) * 4;
  }
  static State& state(const FlashMlaArgs& a, uint8_t* region) {
    return *reinterpret_cast<State*>(region + region_of(a).state);
  }

  static void begin(const FlashMlaArgs& a, uint8_t* region) {
    if (holds_back(a)) state(a, region) = State{0, 0};
  }

  static void stage(const FlashMlaArgs& a, const uint8_t* rows, int64_t n, uint8_t* region) {
    const size_t buffer = holds_back(a) ? size_t(state(a, region).buffer) : 0;
    Bf16Values<Cache>::stage(a, rows, n, region + buffer * region_of(a).chunk);
  }

  static void accumulate(const FlashMlaArgs& a, int64_t c0, int64_t n, float* s, float* f, uint8_t* region) {
    softmax_rows<Avx512>(a, c0, n, s, f);
    const Region l = region_of(a);
    if (!holds_back(a)) {
      const Chunk chunk{region, s, nullptr};
      return pass(a, region, l, &chunk, 1, f, nullptr);
    }
    State& st = state(a, region);
    float* held_p = reinterpret_cast<float*>(region + l.p);
    float* held_f = reinterpret_cast<float*>(region + l.f);
    if (!st.pending) {
      std::memcpy(held_p, s, size_t(a.n_rows * kC) * 4);
      std::memcpy(held_f, f, size_t(a.n_rows) * 4);
      st.pending = 1;
      st.buffer ^= 1;
      return;
    }
    // The held chunk sits in the other buffer; its weights take this chunk's factor too.
    const Chunk chunks[2] = {{region + size_t(st.buffer ^ 1) * l.chunk, held_p, f},
                             {region + size_t(st.buffer) * l.chunk, s, nullptr}};
    pass(a, region, l, chunks, 2, held_f, f);
    st.pending = 0;
    st.buffer ^= 1;
  }

  static void finish(const FlashMlaArgs& a, uint8_t* region) {
    if (!holds_back(a) || !state(a, region).pending) return;
    const Region l = region_of(a);
    State& st = state(a, region);
    float* held_p = reinterpret_cast<float*>(region + l.p);
    const Chunk chunk{region + size_t(st.buffer ^ 1) * l.chunk, held_p, nullptr};
    pass(a, region, l, &chunk, 1, reinterpret_cast<float*>(region + l.f), nullptr);
    st.pending = 0;
  }

  // A for channel block cb and rows r0..r0 + rows: bf16(P d[:, cb] (extra)), a row per 64 bytes.
  static void weights(const FlashMlaArgs& a, const Chunk& ch, int64_t cb, int64_t r0, int rows, uint8_t* w) {
    const float* vd = Bf16Values<Cache>::vd_of(a, ch.staged);
    const __m512 d0 = _mm512_loadu_ps(vd + cb * kC), d1 = _mm512_loadu_ps(vd + cb * kC + 16);
    for (int r = 0; r < rows; ++r) {
      const float* pr = ch.p + (r0 + r) * kC;
      __m512 e0 = d0, e1 = d1;
      if (ch.extra) {
        const __m512 x = _mm512_set1_ps(ch.extra[r0 + r]);
        e0 = _mm512_mul_ps(e0, x), e1 = _mm512_mul_ps(e1, x);
      }
      const __m512bh wr =
          _mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_loadu_ps(pr + 16), e1), _mm512_mul_ps(_mm512_loadu_ps(pr), e0));
      _mm512_store_si512(reinterpret_cast<void*>(w + r * 64), bf16_as_int(wr));
    }
  }

  // acc = acc f1 (f2) + sum over the chunks of P V.
  static void pass(const FlashMlaArgs& a, uint8_t* region, const Region& l, const Chunk* chunks, int count,
                   const float* f1, const float* f2) {
    const int64_t nbv = a.dv / 32, R = a.n_rows;
    const size_t acc_bytes = a.acc_stride * 4, vt_bytes = size_t(a.dv) * 4;
    uint8_t* w = region + l.w;
    for (int64_t r0 = 0; r0 < R; r0 += 16) {
      const int rows = int(std::min<int64_t>(16, R - r0));
      AmxTileConfig config;
      config.tile(0, rows).tile(1, rows).tile(2, rows).tile(3, 16).tile(4, 16).tile(5, rows).tile(6, 16).tile(7, 16);
      config.load();
      float* acc = a.acc + size_t(r0) * a.acc_stride;
      for (int r = 0; r < rows; ++r) {
        const float fr = f1[r0 + r] * (f2 ? f2[r0 + r] : 1.0f);
        if (fr == 1.0f) continue;
        const __m512 fv = _mm512_set1_ps(fr);
        float* ar = acc + size_t(r) * a.acc_stride;
        for (int64_t c = 0; c < a.dv; c += 16) _mm512_storeu_ps(ar + c, _mm512_mul_ps(_mm512_loadu_ps(ar + c), fv));
      }
      for (int64_t cb = 0; cb < nbv; ++cb) {
        float* c = acc + cb * 32;
        _tile_loadd(0, c, acc_bytes);
        _tile_loadd(1, c + 16, acc_bytes);
        // One A buffer: a tile load copies it, so the second chunk's weights may follow.
        // The two chunks' products are written out: GCC's _tile_* macros paste the register
        // number into the asm text, so it must be a literal, not a template parameter.
        weights(a, chunks[0], cb, r0, rows, w);
        const uint8_t* v0 = reinterpret_cast<const uint8_t*>(Bf16Values<Cache>::vt_of(chunks[0].staged)) + cb * 128;
        _tile_loadd(2, w, 64);
        _tile_loadd(3, v0, vt_bytes);
        _tile_loadd(4, v0 + 64, vt_bytes);
        _tile_dpbf16ps(0, 2, 3);
        _tile_dpbf16ps(1, 2, 4);
        if (count == 2) {
          weights(a, chunks[1], cb, r0, rows, w);
          const uint8_t* v1 = reinterpret_cast<const uint8_t*>(Bf16Values<Cache>::vt_of(chunks[1].staged)) + cb * 128;
          _tile_loadd(5, w, 64);
          _tile_loadd(6, v1, vt_bytes);
          _tile_loadd(7, v1 + 64, vt_bytes);
          _tile_dpbf16ps(0, 5, 6);
          _tile_dpbf16ps(1, 5, 7);
        }
        _tile_stored(0, c, acc_bytes);
        _tile_stored(1, c + 16, acc_bytes);
      }
    }
    _tile_release();
  }
};

}  // namespace
}  // namespace deepmla::kernels
