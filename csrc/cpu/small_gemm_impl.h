// The small-rows GEMM kernel, included once per CPU capability by pointwise_*.cpp (each of
// which defines CPU_CAPABILITY first); see small_gemm.h.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "cpu/small_gemm.h"

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

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext

#define LSTM_EXT_SMALL_GEMM_TABLE(NAME)                                                                 \
  namespace lstm_ext::cpu {                                                                             \
  template <typename scalar_t>                                                                          \
  SmallGemmCols<scalar_t> small_gemm_cols_##NAME() { return &CPU_CAPABILITY::small_gemm_cols_impl<scalar_t>; } \
  template SmallGemmCols<float> small_gemm_cols_##NAME<float>();                                        \
  template SmallGemmCols<double> small_gemm_cols_##NAME<double>();                                      \
  }
