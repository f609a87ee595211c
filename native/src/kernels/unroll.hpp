#pragma once
// Loop-unrolling and inlining macros for the SIMD kernels.
//
// Fully unrolls a loop over tile rows/columns so that per-tile arrays of accumulators
// live in registers: GCC's -O2 (our release flags) does not do this on its own, and
// without it every FMA goes through the stack.
#if defined(__clang__)
#define DEEPMLA_UNROLL _Pragma("unroll")
#define DEEPMLA_UNROLL_2 _Pragma("unroll 2")
#define DEEPMLA_UNROLL_4 _Pragma("unroll 4")
#elif defined(__GNUC__)
#define DEEPMLA_UNROLL _Pragma("GCC unroll 16")
#define DEEPMLA_UNROLL_2 _Pragma("GCC unroll 2")
#define DEEPMLA_UNROLL_4 _Pragma("GCC unroll 4")
#else
#define DEEPMLA_UNROLL
#define DEEPMLA_UNROLL_2
#define DEEPMLA_UNROLL_4
#endif

// For helpers that take a tile's accumulators by reference: inlined, they stay in
// registers; called, every one would go through memory.
#if defined(__GNUC__) || defined(__clang__)
#define DEEPMLA_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define DEEPMLA_ALWAYS_INLINE inline
#endif
