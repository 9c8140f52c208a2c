// exp and tanh of float vectors for the gate math on AVX2 and AVX-512, inlined into the kernels.
// Included by simd.h, in a translation unit of one CPU capability.
//
// Why not at::vec's: its exp and tanh call SLEEF out of line, and in the fused step (where the
// gate math runs on a register tile) those calls cost as much as the tile's arithmetic at H = 64
// (docs/performance.md, the fused step's activations). These are Cephes' single-precision
// formulas, branch-free: within 2 ulps of torch.sigmoid / torch.tanh and of the correctly
// rounded result, NaN, Inf and signed zeros as torch gives them (tests/test_numerics.py measures
// every capability).
#pragma once

#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)

#include <ATen/cpu/vec/vec.h>
#include <immintrin.h>

#include "runtime/activations.h"

namespace lstm_ext {
namespace activations {
namespace float_vec {

using V = at::vec::Vectorized<float>;

// p * 2^n for integral n in [-150, 128]: Inf where the product overflows, subnormal or zero where
// it underflows. AVX2 builds 2^n in two halves, so that neither leaves the normal range where the
// product does not (2^128 alone would be Inf at x = 88.7).
inline V scale(const V& p, const V& n) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_scalef_ps(p, n);
#else
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const auto pow2 = [](__m256i e) {
    return V(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23)));
  };
  return p * pow2(half) * pow2(_mm256_sub_epi32(ni, half));
#endif
}

// exp(x): x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so r is nearly exact), a
// degree-5 polynomial for exp(r), times 2^n. Beyond +-126 ln2 scale() over- or underflows as exp
// does; the clamp (at::vec's minimum and maximum keep NaN) only keeps n in scale()'s range.
inline V exp(const V& x_in) {
  const V x = at::vec::maximum(at::vec::minimum(x_in, V(89.f)), V(-104.f));
  const V n = (x * V(1.44269504088896341f)).round();
  V r = at::vec::fmadd(n, V(-0.693359375f), x);
  r = at::vec::fmadd(n, V(2.12194440e-4f), r);
  V p(1.9875691500e-4f);
  p = at::vec::fmadd(p, r, V(1.3981999507e-3f));
  p = at::vec::fmadd(p, r, V(8.3334519073e-3f));
  p = at::vec::fmadd(p, r, V(4.1665795894e-2f));
  p = at::vec::fmadd(p, r, V(1.6666665459e-1f));
  p = at::vec::fmadd(p, r, V(5.0000001201e-1f));
  // 1 + (r + r^2 P(r)): the small part summed first, so the result is rounded about once.
  return scale(at::vec::fmadd(p, r * r, r) + V(1.f), n);
}

// tanh(x) on a = |x|, the sign put back last (so tanh(-0) = -0): below 0.625 an odd polynomial,
// a + a^3 P(a^2); above, 1 - 2 / (exp(2a) + 1), where the subtraction loses at most one bit.
// Past 9.01 the result rounds to 1, and exp(2a) = Inf gives exactly 1.
inline V tanh(const V& x) {
  const V a = x.abs();
  const V z = a * a;
  V p(-5.70498872745e-3f);
  p = at::vec::fmadd(p, z, V(2.06390887954e-2f));
  p = at::vec::fmadd(p, z, V(-5.37397155531e-2f));
  p = at::vec::fmadd(p, z, V(1.33314422036e-1f));
  p = at::vec::fmadd(p, z, V(-3.33332819422e-1f));
  const V small = at::vec::fmadd(p * z, a, a);
  const V large = V(1.f) - V(2.f) / (exp(a + a) + V(1.f));
  // NaN compares false, so it takes the large branch, which keeps it NaN.
  return V::blendv(large, small, a < V(0.625f)) | (x & V(-0.f));
}

}  // namespace float_vec

template <>
struct Math<at::vec::Vectorized<float>> {
  static at::vec::Vectorized<float> exp(const at::vec::Vectorized<float>& x) { return float_vec::exp(x); }
  static at::vec::Vectorized<float> tanh(const at::vec::Vectorized<float>& x) { return float_vec::tanh(x); }
};

}  // namespace activations
}  // namespace lstm_ext

#endif
