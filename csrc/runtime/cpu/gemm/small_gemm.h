// A GEMM of a few rows against a weight: out[r, :] = a[r, :] @ w^T (+ biases, + out).
//
// A streaming step multiplies one row by each weight. MKL's sgemm packs the weight on every
// call, which costs more than one row's arithmetic; these kernels read each weight row once,
// straight from memory, in SIMD. Compiled once per CPU capability like the gate kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "runtime/cpu/capability.h"

namespace lstm_ext {
namespace cpu {

// Rows up to which small_rows_gemm is worth taking over from at::addmm.
constexpr int64_t kSmallGemmRows = 4;

// out[r, :] (+)= a[r, :] @ W^T (+ bias1 + bias2) for rows r < n, W of shape [N, K]. The
// dot-product kernel reads W as it is (w, contiguous [N, K]); the K-major kernel reads it
// transposed (w as W^T, [K, N] with row stride ldw): each of a's entries is broadcast against a
// row of W^T, so there are no horizontal sums, on which the dot-product kernel spends most of a
// few-row step. The K-major kernel is worth it when one weight serves many steps, which pay for
// the transpose once (RecurrentGemm); it takes no biases.
template <typename scalar_t>
struct SmallGemm {
  const scalar_t* a;  // [n, K], row stride lda
  int64_t lda, n, K;
  const scalar_t* w;      // W [N, K] contiguous (dot product), or W^T [K, N] (K-major)
  int64_t ldw;            // the row stride of what w points at: K for W, at least N for W^T
  const scalar_t* bias1;  // [N] or null (dot product only)
  const scalar_t* bias2;  // [N] or null (dot product only)
  scalar_t* out;          // [n, N], row stride ldo
  int64_t ldo;
  bool accumulate;  // add to out instead of overwriting it
};

// A kernel computes columns [begin, end) of out.
template <typename scalar_t>
struct SmallGemmKernels {
  void (*dot)(const SmallGemm<scalar_t>&, int64_t begin, int64_t end);
  void (*kmajor)(const SmallGemm<scalar_t>&, int64_t begin, int64_t end);
};

// small_gemm_kernels<scalar_t>(): the kernels this CPU runs, for float and double; compiled once
// per CPU capability (small_gemm_impl.h, by small_gemm_*.cpp).
LSTM_EXT_KERNELS_BY_CAPABILITY(SmallGemmKernels, small_gemm_kernels)

// g over all N columns of out, split across threads for big enough steps (float, double): the
// dot-product kernel, and the K-major one.
template <typename scalar_t>
void run_small_gemm(const SmallGemm<scalar_t>& g, int64_t N);
template <typename scalar_t>
void run_small_gemm_kmajor(const SmallGemm<scalar_t>& g, int64_t N);

// Whether small_rows_gemm runs rows [n, K] @ weight^T: float or double, few rows, dense
// operands (the weight contiguous, each row contiguous).
bool small_gemm_applies(const at::Tensor& rows, const at::Tensor& weight);

// out (+)= rows @ weight^T + bias1 + bias2 (undefined biases: none), out [n, N] with contiguous rows.
void small_rows_gemm(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& bias1,
                     const at::Tensor& bias2, at::Tensor& out, bool accumulate);

}  // namespace cpu
}  // namespace lstm_ext
