#pragma once
// The e^x recipe of the SIMD SwiGLU variants, written once so that they agree lane for
// lane (the AVX512 variant runs the same float operations as the AVX2 one):
//
//   x = clamp(x, kMinArg, kMaxArg)
//   n = round(x log2(e)),  r = x - n ln2 with ln2 = kLn2Hi + kLn2Lo (Cody-Waite)
//   e^r = 1 + r (1 + r (c2 + r (c3 + r (c4 + r (c5 + r c6)))))    (Horner, FMA)
//   e^x = (e^r + e^r) 2^(n-1), 2^(n-1) built in the exponent field
//
// The last product only moves the exponent, so it is exact (or overflows): compilers
// may fuse it with SwiGLU's 1 + e^x into one FMA (GCC does) without changing a bit.
// Only the constants live here: the code is per ISA, with internal linkage (see
// kernels/matmul/tiling.hpp on why nothing inline is shared across -m flags).
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
