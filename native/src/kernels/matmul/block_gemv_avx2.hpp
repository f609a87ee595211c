#pragma once
// The AVX2 GEMV (one activation row) for weights in 32-value blocks with an fp16 scale
// (Q8_0, Q6_0) against a Q8_0 activation row. Token generation is bound by the weight
// stream, so the kernel reads each weight row once, front to back, with as little work
// per block as the exact integer dot allows:
//
//   - one row at a time: the thread's rows are one sequential stream (they are adjacent
//     in memory), the pattern the hardware prefetcher follows best, plus a software
//     prefetch kPrefetchBytes ahead of it;
//   - blocks in groups of 8: the 8 integer dots (8 int32 lanes each) are reduced to one
//     vector of 8 block sums, converted once, and scaled by the 8 weight scales (gathered
//     as fp16 and converted by one F16C instruction) times the 8 activation scales
//     (converted once per call): one FMA per 8 blocks instead of per block;
//   - the row's float sum is 8 lanes (block b in lane b % 8) reduced once at the end.
//
// The format is the one block_panel_avx2.hpp takes (raw_values, kOffset). kOffset = 0:
// signed quants, sign trick. kOffset > 0 (Q6_0): raw quants are unsigned, maddubs takes
// them directly and kOffset * sum(a) per block is subtracted in int32 (exact).
#include <cstring>
#include <type_traits>
#include <vector>

#include "formats/blocks.hpp"
#include "kernels/matmul/avx2_util.hpp"
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {
namespace {

// Ahead of the block being read, into L2: enough stream to cover the memory latency at
// the per-core bandwidth. History, each time weight GB/s over a plain read of the same
// bytes by the same threads:
//   - Zen3 (1 thread, 4 KiB pages), into L1: ~0.7 with hardware prefetch alone, ~0.93
//     at 2 KiB, 1 and 4 KiB a little worse.
//   - Zen5 (2 threads, page-cache pages), into L1, tg128 of the 4-layer bench model:
//     2 KiB 58.0 t/s, 4 KiB 62.3, 8 KiB 62.8-63.6, 16 KiB 60.2.
//   - Intel Sapphire Rapids class under KVM (2 threads, n = 1, k = 2048, 2 x 213 MiB of
//     Q8_0 rows in 2 MiB pages): into L1 the distance matters a lot (0: 0.84, 2 KiB
//     0.96-0.97, 4 KiB 0.79, 8 KiB 0.73); into L2 hardly (2 KiB 0.98-1.0, 4 KiB 0.98,
//     8 KiB 0.94-0.95, 12 KiB 0.94-0.95; 4 KiB pages: 0.96-1.14 at 2-12 KiB). An L1 miss
//     buffer is held until the line arrives, and there are few of them; L2 has more.
// So: T1 at 4 KiB. The Intel host's tg64 of the bench model, alternating builds: 31.0-31.8
// -> 36.6 t/s mapped, 31.8 -> 38.5-39.2 with --no-mmap. Zen was measured only into L1,
// where 4 KiB was within 1% of 8 KiB; remeasure there when a Zen host comes by.
constexpr size_t kPrefetchBytes = 4096;

inline void prefetch_stream(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }

// Lane j of the result = sum of the 8 int32 lanes of p[j].
inline __m256i reduce_8x8_epi32(const __m256i p[8]) {
  const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
  const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
  // a = [p0 p1 p2 p3 (low halves) | p0 p1 p2 p3 (high halves)], b likewise for p4..p7.
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

// Per activation row (here: the one row), converted once per call.
struct GemvActivation {
  std::vector<float> d;          // block scales, padded to a multiple of 8 with zeros
  std::vector<int32_t> offset;   // kOffset * sum of the block's quants (kOffset > 0)
};

inline GemvActivation& gemv_scratch() {
  static thread_local GemvActivation scratch;
  return scratch;
}

template <int kOffset>
void gemv_activation(int64_t nb, const formats::BlockQ8_0* x, GemvActivation& a) {
  const size_t padded = size_t((nb + 7) / 8 * 8);
  if (a.d.size() < padded) a.d.resize(padded), a.offset.resize(padded);
  for (int64_t b = 0; b < int64_t(padded); ++b) {
    a.d[size_t(b)] = b < nb ? _cvtsh_ss(x[b].d) : 0.0f;
    a.offset[size_t(b)] = 0;
    if (kOffset != 0 && b < nb)
      a.offset[size_t(b)] = kOffset * sum_i8x32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs)));
  }
}

// The 8 int32 partial sums of one block's integer dot (before the kOffset correction),
// with AVX2's maddubs + madd on the format's raw values.
struct MaddubsBlockDot {
  template <class Weights>
  static __m256i dot(const typename Weights::Block* wb, const formats::BlockQ8_0* xb) {
    const __m256i w = Weights::raw_values(wb);
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb->qs));
    const __m256i ones16 = _mm256_set1_epi16(1);
    if constexpr (Weights::kOffset == 0) {
      return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w)), ones16);
    } else {
      return _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones16);
    }
  }
};

// Dot supplies the block dot (MaddubsBlockDot here, one vpdpbusd in
// block_gemv_avx512vnni.hpp); the stream, prefetch and scaling are the same.
template <class Weights, class Dot = MaddubsBlockDot>
void run_gemv(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
              float* y) {
  using Block = typename Weights::Block;
  using formats::BlockQ8_0;
  const int64_t nb = k / 32, nb8 = nb - nb % 8;
  const BlockQ8_0* xb = reinterpret_cast<const BlockQ8_0*>(x);
  GemvActivation& act = gemv_scratch();
  gemv_activation<Weights::kOffset>(nb, xb, act);
  const float* dx = act.d.data();
  const int32_t* off = act.offset.data();
  for (int64_t r = r0; r < r1; ++r) {
    const Block* wb = reinterpret_cast<const Block*>(w + size_t(r) * w_row_bytes);
    __m256 acc = _mm256_setzero_ps();
    // Blocks [b, b + 8), or only the first rem of them (the others' lanes zero: their dx and
    // off are padded zeros). The last nb % 8 blocks of a row are one such group instead of a
    // horizontal sum per block: the experts' ffn_down rows (k = 1408, 44 blocks) end in 4.
    auto add_group = [&](int64_t b, auto whole, int rem) {
      const char* ahead = reinterpret_cast<const char*>(wb + b) + kPrefetchBytes;
      for (int line = 0; line < 5; ++line) prefetch_stream(ahead + 64 * line);  // 8 blocks span at most 5 lines
      __m256i p[8];
      __m128i dw16;
      if constexpr (decltype(whole)::value) {
        DEEPMLA_UNROLL
        for (int j = 0; j < 8; ++j) p[j] = Dot::template dot<Weights>(wb + b + j, xb + b + j);
        dw16 = _mm_set_epi16(short(wb[b + 7].d), short(wb[b + 6].d), short(wb[b + 5].d), short(wb[b + 4].d),
                             short(wb[b + 3].d), short(wb[b + 2].d), short(wb[b + 1].d), short(wb[b + 0].d));
      } else {
        alignas(16) uint16_t dw[8] = {};
        DEEPMLA_UNROLL
        for (int j = 0; j < 8; ++j) {
          p[j] = j < rem ? Dot::template dot<Weights>(wb + b + j, xb + b + j) : _mm256_setzero_si256();
          if (j < rem) dw[j] = wb[b + j].d;
        }
        dw16 = _mm_load_si128(reinterpret_cast<const __m128i*>(dw));
      }
      __m256i s = reduce_8x8_epi32(p);
      if constexpr (Weights::kOffset != 0)
        s = _mm256_sub_epi32(s, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(off + b)));
      const __m256 scale = _mm256_mul_ps(_mm256_cvtph_ps(dw16), _mm256_loadu_ps(dx + b));
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc);
    };
    for (int64_t b = 0; b < nb8; b += 8) add_group(b, std::true_type{}, 8);
    if (nb8 < nb) add_group(nb8, std::false_type{}, int(nb - nb8));
    y[r] = hsum_ps(acc);
  }
}

}  // namespace
}  // namespace deepmla::kernels
