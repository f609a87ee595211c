#pragma once
// Scratch layout shared by every flash MLA variant (internal linkage: see
// kernels/matmul/tiling.hpp). All regions are 64-byte aligned.
//   q     [n_rows][dk] f32: the query rows times scale
//   k     [kFlashMlaChunk][dk] f32: one chunk of cache rows, converted
//   s     [n_rows][kFlashMlaChunk] f32: scores, then softmax weights
//   f     [n_rows] f32: per row, the factor that rescales acc for the new max
//   q8    the query rows quantized, in VNNI panels of 16 rows (int8 variants,
//         flash_mla_vnni.hpp): per panel and 32-value block, d[16] f32, start[16] i32
//         and 8 x 64 bytes of quants
//   ku    [kFlashMlaChunk][dk] bytes: one chunk's cache quants, shifted to unsigned
//   kd    [kFlashMlaChunk][dk / 32] f32: their block scales
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "deepmla/kernels.hpp"

namespace deepmla::kernels {
namespace {

struct FlashMlaLayout {
  size_t q, k, s, f, q8, ku, kd, total;
};

// Bytes of one 32-value block of a 16-row query panel: d[16], start[16], 8 registers.
constexpr size_t kQueryPanelBlockBytes = 64 + 64 + 8 * 64;

inline size_t align64(size_t v) { return (v + 63) / 64 * 64; }

// One 32-value block of a query row for the int8 variants: x = q * scale rounded to
// int8 with d = max|x| / 127 (f32, not Q8_0's f16: the query is not stored). A block
// whose 1 / d overflows becomes zeros, as in the activation quantizers. The scalar
// reference and the SIMD variants both call this, so their int8 queries are the same.
inline float quantize_query_block(const float* q, float scale, int8_t* out) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  float amax = 0;
  bool finite = true;
  for (int i = 0; i < 32; ++i) {
    const float x = std::fabs(q[i] * scale);
    finite = finite && x < kInf;
    amax = std::max(amax, x);
  }
  const float d = amax / 127.0f;
  const float id = d > 0 ? 1.0f / d : 0.0f;
  if (!finite || !(id < kInf)) {
    std::fill(out, out + 32, int8_t(0));
    // An inf or NaN query stays NaN in the scores (NaN * 0), as in the float variants.
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  for (int i = 0; i < 32; ++i) {
    const float v = std::nearbyint(q[i] * scale * id);
    out[i] = int8_t(std::min(127.0f, std::max(-127.0f, v)));
  }
  return d;
}

inline FlashMlaLayout flash_mla_layout(int64_t dk, int64_t n_rows) {
  FlashMlaLayout l;
  size_t at = 0;
  l.q = at, at += align64(size_t(n_rows * dk) * 4);
  l.k = at, at += align64(size_t(kFlashMlaChunk * dk) * 4);
  l.s = at, at += align64(size_t(n_rows * kFlashMlaChunk) * 4);
  l.f = at, at += align64(size_t(n_rows) * 4);
  l.q8 = at, at += align64(size_t((n_rows + 15) / 16) * size_t(dk / 32) * kQueryPanelBlockBytes);
  l.ku = at, at += align64(size_t(kFlashMlaChunk * dk));
  l.kd = at, at += align64(size_t(kFlashMlaChunk * (dk / 32)) * 4);
  l.total = at;
  return l;
}

// Scratch of the decompressed flash (decompressed_flash.hpp), per call of at most
// kDecompressedFlashRows queries; keys go kDecompressedFlashKeys at a time.
//   qt    q * scale transposed, rows in lanes: [dq][64] f32
//   s     scores, then softmax weights, rows in lanes: [kDecompressedFlashKeys][64] f32
//   vis   per query, the keys it sees (clamped), i32; f, per query, its acc factor
//   zero  dq zeros: the rows a score tile reads past the chunk's last key
// and for the bf16 P V (decompressed_flash_avx512bf16.cpp), per step of keys:
//   vt    the values as bf16 pairs of keys: [kDecompressedFlashKeys / 2][dv] dwords
//   pw    the softmax weights as bf16 pairs of keys, rows in lanes: [keys / 2][64] dwords
constexpr int64_t kDecompressedFlashKeys = 32;

struct DecompressedFlashScratch {
  size_t qt, s, vis, f, zero, vt, pw, total;
};

inline DecompressedFlashScratch decompressed_flash_scratch(int64_t dq, int64_t dv) {
  constexpr size_t R = size_t(kDecompressedFlashRows), K = size_t(kDecompressedFlashKeys);
  DecompressedFlashScratch l;
  size_t at = 0;
  l.qt = at, at += align64(size_t(dq) * R * 4);
  l.s = at, at += align64(K * R * 4);
  l.vis = at, at += align64(R * 4);
  l.f = at, at += align64(R * 4);
  l.zero = at, at += align64(size_t(dq) * 4);
  l.vt = at, at += align64(K / 2 * size_t(dv) * 4);
  l.pw = at, at += align64(K / 2 * R * 4);
  l.total = at;
  return l;
}

}  // namespace
}  // namespace deepmla::kernels
