#pragma once
// SwiGLU rows, written once over a float vector type V (attention/simd_avx2.hpp,
// simd_avx512.hpp) so that the SIMD variants agree lane for lane; a variant file is one
// line calling swiglu_rows<V>. e^x:
//
//   x = clamp(x, kMinArg, kMaxArg)
//   n = round(x log2(e)),  r = x - n ln2 with ln2 = kLn2Hi + kLn2Lo (Cody-Waite)
//   e^r = 1 + r (1 + r (c2 + r (c3 + r (c4 + r (c5 + r c6)))))    (Horner, FMA)
//   e^x = (e^r + e^r) 2^(n-1), 2^(n-1) built in the exponent field
//
// The last product only moves the exponent, so it is exact (or overflows): compilers
// may fuse it with SwiGLU's 1 + e^x into one FMA (GCC does) without changing a bit.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include <cstdint>

namespace deepmla::kernels::swiglu_exp {

// Clamping never changes the result SwiGLU sees, and keeps n within what the exponent
// field holds. Below: e^-86 is 4.5e-38, yet 1 + e^x is exactly 1 in float once
// e^x <= 2^-24 (x < -16.6), in the reference as here; n >= -125 keeps 2^(n-1) normal.
// Above: n <= round(89 log2 e) = 128; 2^128's biased exponent would be 255 (inf/NaN),
// hence the scale 2^(n-1) and the doubled e^r (both exact). The final product then
// overflows to inf exactly when e^r 2^n rounds above FLT_MAX, i.e. for x past
// ln(FLT_MAX) = 88.7228, as expf does. NaN leaves the clamp as a finite number (max/min
// return their second operand for NaN); SwiGLU's g / (1 + e) still carries g's NaN.
constexpr float kMinArg = -86.0f;
constexpr float kMaxArg = 89.0f;

constexpr float kLog2e = 0x1.715476p+0f;
// kLn2Hi has 15 significant bits: n kLn2Hi is exact for |n| < 512, so x - n kLn2Hi
// cancels without error; kLn2Lo is the next 24 bits of ln 2 (hi + lo is off by 5.5e-14).
constexpr float kLn2Hi = 0x1.62e4p-1f;
constexpr float kLn2Lo = 0x1.7f7d1cp-20f;

// Minimax for relative error on |r| <= ln2/2 with 1 + r fixed, fitted by Remez exchange
// for this file: 3.8e-9 (0.03 ulp) with the coefficients rounded to float. The float
// evaluation's roundings (mostly the last FMA) dominate: over every float x the result
// is within 0.91 ulp of e^x (glibc's expf: 0.502) and 1 ulp of expf.
constexpr float kC2 = 0x1.fffffcp-2f;
constexpr float kC3 = 0x1.555492p-3f;
constexpr float kC4 = 0x1.5558f2p-5f;
constexpr float kC5 = 0x1.1239d4p-7f;
constexpr float kC6 = 0x1.6a244cp-10f;

}  // namespace deepmla::kernels::swiglu_exp

namespace deepmla::kernels {
namespace {

template <class V>
typename V::F swiglu_exp_ps(typename V::F x) {
  using namespace swiglu_exp;
  using F = typename V::F;
  x = V::min(V::max(x, V::set1(kMinArg)), V::set1(kMaxArg));
  const F n = V::round(V::mul(x, V::set1(kLog2e)));
  F r = V::fnma(n, V::set1(kLn2Hi), x);
  r = V::fnma(n, V::set1(kLn2Lo), r);
  F p = V::fma(V::set1(kC6), r, V::set1(kC5));
  p = V::fma(p, r, V::set1(kC4));
  p = V::fma(p, r, V::set1(kC3));
  p = V::fma(p, r, V::set1(kC2));
  p = V::fma(p, r, V::set1(1.0f));
  p = V::fma(p, r, V::set1(1.0f));
  return V::mul(V::add(p, p), V::exp2i(n, 126));
}

// The reference's operation order: (g / (1 + e^-g)) * u.
template <class V>
typename V::F swiglu_vec(typename V::F g, typename V::F u) {
  const typename V::F e = swiglu_exp_ps<V>(V::neg(g));
  return V::mul(V::div(g, V::add(V::set1(1.0f), e)), u);
}

// The tail runs the same lanes under a mask, so an element's result does not depend on
// its position in the row. out may be g or u.
template <class V>
void swiglu_rows(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(out + i, swiglu_vec<V>(V::load(g + i), V::load(u + i)));
  if (i < n) V::store_n(out + i, swiglu_vec<V>(V::load_n(g + i, n - i), V::load_n(u + i, n - i)), n - i);
}

}  // namespace
}  // namespace deepmla::kernels
