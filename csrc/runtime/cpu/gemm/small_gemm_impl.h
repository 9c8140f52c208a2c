// The small-rows GEMM kernels, included once per CPU capability by small_gemm_*.cpp (each of
// which defines CPU_CAPABILITY first); see small_gemm.h.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "runtime/cpu/gemm/small_gemm.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

template <typename scalar_t>
void small_gemm_cols_impl(const SmallGemm<scalar_t>& g, int64_t begin, int64_t end) {
  using V = at::vec::Vectorized<scalar_t>;
  constexpr int64_t L = V::size();
  for (int64_t j = begin; j < end; ++j) {
    const scalar_t* w = g.w + j * g.K;
    scalar_t bias = 0;
    if (g.bias1) bias += g.bias1[j];
    if (g.bias2) bias += g.bias2[j];
    for (int64_t r = 0; r < g.n; ++r) {
      const scalar_t* a = g.a + r * g.lda;
      // Two accumulators: two FMA chains in flight.
      V acc0(scalar_t(0)), acc1(scalar_t(0));
      int64_t k = 0;
      for (; k + 2 * L <= g.K; k += 2 * L) {
        acc0 = at::vec::fmadd(V::loadu(a + k), V::loadu(w + k), acc0);
        acc1 = at::vec::fmadd(V::loadu(a + k + L), V::loadu(w + k + L), acc1);
      }
      for (; k + L <= g.K; k += L) acc0 = at::vec::fmadd(V::loadu(a + k), V::loadu(w + k), acc0);
      scalar_t sum = at::vec::vec_reduce_all<scalar_t>([](V& x, V& y) { return x + y; }, acc0 + acc1);
      for (; k < g.K; ++k) sum += a[k] * w[k];
      scalar_t* o = g.out + r * g.ldo + j;
      *o = g.accumulate ? *o + sum + bias : sum + bias;
    }
  }
}

// out[0:R, j:j+C*L] of a K-major product: R x C accumulators stay in registers for all of K.
// Each vector holds count <= L columns; count < L (C == 1 only) covers the last ones.
template <typename scalar_t, int R, int C>
inline void kmajor_tile(const SmallGemm<scalar_t>& g, int64_t j, int64_t count) {
  using V = at::vec::Vectorized<scalar_t>;
  constexpr int64_t L = V::size();
  V acc[R][C];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      acc[r][c] = g.accumulate ? V::loadu(g.out + r * g.ldo + j + c * L, count) : V(scalar_t(0));
    }
  }
  const scalar_t* b = g.w + j;
  for (int64_t k = 0; k < g.K; ++k, b += g.ldw) {
    V w[C];
    for (int c = 0; c < C; ++c) w[c] = V::loadu(b + c * L, count);
    for (int r = 0; r < R; ++r) {
      const V a(g.a[r * g.lda + k]);
      for (int c = 0; c < C; ++c) acc[r][c] = at::vec::fmadd(a, w[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c].store(g.out + r * g.ldo + j + c * L, count);
  }
}

template <typename scalar_t, int R>
void kmajor_rows(const SmallGemm<scalar_t>& g, int64_t begin, int64_t end) {
  constexpr int64_t L = at::vec::Vectorized<scalar_t>::size();
  // Four vectors of columns while R x 4 accumulators fit the 32 AVX-512 registers, else two.
  constexpr int C = (sizeof(at::vec::Vectorized<scalar_t>) >= 64) ? 4 : 2;
  int64_t j = begin;
  for (; j + C * L <= end; j += C * L) kmajor_tile<scalar_t, R, C>(g, j, L);
  for (; j + L <= end; j += L) kmajor_tile<scalar_t, R, 1>(g, j, L);
  if (j < end) kmajor_tile<scalar_t, R, 1>(g, j, end - j);
}

template <typename scalar_t>
void small_gemm_kmajor_impl(const SmallGemm<scalar_t>& g, int64_t begin, int64_t end) {
  // RecurrentGemm::small_step passes 0 <= n <= kSmallGemmRows rows (0: a batch of none).
  static_assert(kSmallGemmRows == 4, "one register tile per row count up to kSmallGemmRows");
  switch (g.n) {
    case 1: return kmajor_rows<scalar_t, 1>(g, begin, end);
    case 2: return kmajor_rows<scalar_t, 2>(g, begin, end);
    case 3: return kmajor_rows<scalar_t, 3>(g, begin, end);
    case 4: return kmajor_rows<scalar_t, 4>(g, begin, end);
    default: return;
  }
}

// This capability's copy of the table small_gemm_kernels<scalar_t>() picks from (small_gemm.h).
template <typename scalar_t>
SmallGemmKernels<scalar_t> small_gemm_kernels() {
  return {&small_gemm_cols_impl<scalar_t>, &small_gemm_kmajor_impl<scalar_t>};
}
template SmallGemmKernels<float> small_gemm_kernels<float>();
template SmallGemmKernels<double> small_gemm_kernels<double>();

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
