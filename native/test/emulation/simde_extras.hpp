#pragma once
// Test-only (DEEPMLA_EMULATE_AVX512, CMakeLists.txt): the AVX512 intrinsics our kernels use
// that SIMDe 0.7.4 (Debian bookworm's libsimde-dev) does not implement, written over the
// ones it does. Included after simde/x86/avx512.h; each follows Intel's definition.
#include <cstdint>
#include <cstring>

static inline simde__m256 deepmla_emu_extractf32x8_ps(simde__m512 a, int imm) {
  float v[16];
  simde_mm512_storeu_ps(v, a);
  return simde_mm256_loadu_ps(v + 8 * (imm & 1));
}
#define _mm512_extractf32x8_ps(a, imm) deepmla_emu_extractf32x8_ps(a, imm)

// Round to nearest even (the default MXCSR mode), 0x80000000 for NaN and out of range:
// the 256-bit conversion on each half has exactly these semantics.
static inline simde__m512i deepmla_emu_cvtps_epi32(simde__m512 a) {
  float v[16];
  int32_t r[16];
  simde_mm512_storeu_ps(v, a);
  simde_mm256_storeu_si256(reinterpret_cast<simde__m256i*>(r), simde_mm256_cvtps_epi32(simde_mm256_loadu_ps(v)));
  simde_mm256_storeu_si256(reinterpret_cast<simde__m256i*>(r + 8), simde_mm256_cvtps_epi32(simde_mm256_loadu_ps(v + 8)));
  return simde_mm512_loadu_si512(r);
}
#define _mm512_cvtps_epi32(a) deepmla_emu_cvtps_epi32(a)

// Bytes whose mask bit is clear are zero and not read (the instruction suppresses their
// faults, which lets kernels load a row's tail without reading past it).
static inline simde__m512i deepmla_emu_maskz_loadu_epi8(uint64_t k, const void* p) {
  int8_t r[64];
  const int8_t* s = static_cast<const int8_t*>(p);
  for (int i = 0; i < 64; ++i) r[i] = (k >> i) & 1 ? s[i] : 0;
  return simde_mm512_loadu_si512(r);
}
#define _mm512_maskz_loadu_epi8(k, p) deepmla_emu_maskz_loadu_epi8(k, p)

// VPMOVSXBD: 16 signed bytes sign-extended to 16 int32 lanes.
static inline simde__m512i deepmla_emu_cvtepi8_epi32(simde__m128i a) {
  int8_t v[16];
  int32_t r[16];
  simde_mm_storeu_si128(reinterpret_cast<simde__m128i*>(v), a);
  for (int i = 0; i < 16; ++i) r[i] = v[i];
  return simde_mm512_loadu_si512(r);
}
#define _mm512_cvtepi8_epi32(a) deepmla_emu_cvtepi8_epi32(a)

static inline simde__m512 deepmla_emu_cvtepi32_ps(simde__m512i a) {
  int32_t v[16];
  float r[16];
  simde_mm512_storeu_si512(v, a);
  simde_mm256_storeu_ps(r, simde_mm256_cvtepi32_ps(simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(v))));
  simde_mm256_storeu_ps(r + 8, simde_mm256_cvtepi32_ps(simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(v + 8))));
  return simde_mm512_loadu_ps(r);
}
#define _mm512_cvtepi32_ps(a) deepmla_emu_cvtepi32_ps(a)

static inline simde__m512i deepmla_emu_maskz_loadu_epi16(uint32_t k, const void* p) {
  uint16_t r[32];
  const uint16_t* s = static_cast<const uint16_t*>(p);
  for (int i = 0; i < 32; ++i) r[i] = (k >> i) & 1 ? s[i] : 0;
  return simde_mm512_loadu_si512(r);
}
#define _mm512_maskz_loadu_epi16(k, p) deepmla_emu_maskz_loadu_epi16(k, p)

static inline simde__m512 deepmla_emu_maskz_loadu_ps(uint32_t k, const void* p) {
  float r[16];
  const float* s = static_cast<const float*>(p);
  for (int i = 0; i < 16; ++i) r[i] = (k >> i) & 1 ? s[i] : 0.0f;
  return simde_mm512_loadu_ps(r);
}
#define _mm512_maskz_loadu_ps(k, p) deepmla_emu_maskz_loadu_ps(k, p)

static inline simde__m512 deepmla_emu_mask_loadu_ps(simde__m512 src, uint32_t k, const void* p) {
  float r[16];
  simde_mm512_storeu_ps(r, src);
  const float* s = static_cast<const float*>(p);
  for (int i = 0; i < 16; ++i)
    if ((k >> i) & 1) r[i] = s[i];
  return simde_mm512_loadu_ps(r);
}
#define _mm512_mask_loadu_ps(src, k, p) deepmla_emu_mask_loadu_ps(src, k, p)

static inline void deepmla_emu_mask_storeu_ps(void* p, uint32_t k, simde__m512 a) {
  float v[16];
  simde_mm512_storeu_ps(v, a);
  float* d = static_cast<float*>(p);
  for (int i = 0; i < 16; ++i)
    if ((k >> i) & 1) d[i] = v[i];
}
#define _mm512_mask_storeu_ps(p, k, a) deepmla_emu_mask_storeu_ps(p, k, a)

// VCVTNE2PS2BF16: word i < 16 from b[i], word i >= 16 from a[i - 16]; round to nearest
// even, NaN -> quiet NaN, denormal inputs -> signed zero (the instruction's DAZ).
static inline uint16_t deepmla_emu_fp32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);
  if ((x & 0x7f800000u) == 0) return uint16_t((x >> 16) & 0x8000);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}
static inline simde__m512bh deepmla_emu_cvtne2ps_pbh(simde__m512 a, simde__m512 b) {
  float va[16], vb[16];
  uint16_t r[32];
  simde_mm512_storeu_ps(va, a);
  simde_mm512_storeu_ps(vb, b);
  for (int i = 0; i < 16; ++i) r[i] = deepmla_emu_fp32_to_bf16(vb[i]), r[i + 16] = deepmla_emu_fp32_to_bf16(va[i]);
  simde__m512bh out;
  std::memcpy(&out, r, sizeof out);
  return out;
}
#define _mm512_cvtne2ps_pbh(a, b) deepmla_emu_cvtne2ps_pbh(a, b)

// VPMOVDB: the low byte of each of the 16 int32 lanes (truncation, no saturation).
static inline simde__m128i deepmla_emu_cvtepi32_epi8(simde__m512i a) {
  int32_t v[16];
  int8_t r[16];
  simde_mm512_storeu_si512(v, a);
  for (int i = 0; i < 16; ++i) r[i] = int8_t(uint8_t(uint32_t(v[i]) & 0xff));
  return simde_mm_loadu_si128(r);
}
#define _mm512_cvtepi32_epi8(a) deepmla_emu_cvtepi32_epi8(a)

// VCVTPH2PS (16 lanes): each fp16 of the 256-bit source to f32, exactly.
// The emulated files are built with F16C (CMakeLists.txt): two 8-lane conversions.
static inline simde__m512 deepmla_emu_cvtph_ps(simde__m256i a) {
  uint16_t h[16];
  float f[16];
  simde_mm256_storeu_si256(reinterpret_cast<simde__m256i*>(h), a);
  _mm256_storeu_ps(f, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h))));
  _mm256_storeu_ps(f + 8, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 8))));
  return simde_mm512_loadu_ps(f);
}
#define _mm512_cvtph_ps(a) deepmla_emu_cvtph_ps(a)

// 16-bit words whose mask bit is clear are zero and not read (faults suppressed).
static inline simde__m256i deepmla_emu_mm256_maskz_loadu_epi16(uint32_t k, const void* p) {
  int16_t r[16];
  for (int i = 0; i < 16; ++i) r[i] = (k >> i) & 1 ? static_cast<const int16_t*>(p)[i] : int16_t(0);
  return simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(r));
}
#define _mm256_maskz_loadu_epi16(k, p) deepmla_emu_mm256_maskz_loadu_epi16(k, p)

// VPCMPUD (greater than): bit i set where lane i of a > lane i of b, unsigned.
static inline uint16_t deepmla_emu_cmpgt_epu32_mask(simde__m512i a, simde__m512i b) {
  uint32_t x[16], y[16];
  simde_mm512_storeu_si512(x, a);
  simde_mm512_storeu_si512(y, b);
  uint16_t k = 0;
  for (int i = 0; i < 16; ++i) k = uint16_t(k | (x[i] > y[i] ? 1u << i : 0u));
  return k;
}
#define _mm512_cmpgt_epu32_mask(a, b) deepmla_emu_cmpgt_epu32_mask(a, b)

// VPMOVDW: the low 16 bits of each of the 16 int32 lanes (truncation, no saturation).
static inline simde__m256i deepmla_emu_cvtepi32_epi16(simde__m512i a) {
  uint32_t v[16];
  uint16_t r[16];
  simde_mm512_storeu_si512(v, a);
  for (int i = 0; i < 16; ++i) r[i] = uint16_t(v[i] & 0xffff);
  return simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(r));
}
#define _mm512_cvtepi32_epi16(a) deepmla_emu_cvtepi32_epi16(a)

// Dwords whose mask bit is clear are zero and not read (faults suppressed).
static inline simde__m512i deepmla_emu_maskz_loadu_epi32(uint16_t k, const void* p) {
  int32_t r[16];
  for (int i = 0; i < 16; ++i) r[i] = (k >> i) & 1 ? static_cast<const int32_t*>(p)[i] : 0;
  return simde_mm512_loadu_si512(r);
}
#define _mm512_maskz_loadu_epi32(k, p) deepmla_emu_maskz_loadu_epi32(k, p)

// Only the words whose mask bit is set are written.
static inline void deepmla_emu_mm256_mask_storeu_epi16(void* p, uint16_t k, simde__m256i a) {
  int16_t v[16];
  simde_mm256_storeu_si256(reinterpret_cast<simde__m256i*>(v), a);
  for (int i = 0; i < 16; ++i)
    if ((k >> i) & 1) static_cast<int16_t*>(p)[i] = v[i];
}
#define _mm256_mask_storeu_epi16(p, k, a) deepmla_emu_mm256_mask_storeu_epi16(p, k, a)
