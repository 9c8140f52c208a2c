// A GEMM of a few rows against a weight: out[r, :] = a[r, :] @ w^T (+ biases, + out).
//
// A streaming step multiplies one row by each weight. MKL's sgemm packs the weight on every
// call, which costs more than one row's arithmetic; this kernel reads each weight row once,
// straight from memory, in SIMD dot products. Compiled once per CPU capability
// (lstm/cpu/pointwise_*.cpp) like the gate kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lstm_ext {
namespace cpu {

// Rows up to which small_rows_gemm is worth taking over from at::addmm.
constexpr int64_t kSmallGemmRows = 4;

template <typename scalar_t>
struct SmallGemm {
  const scalar_t* a;  // [n, K], row stride lda
  int64_t lda, n, K;
  const scalar_t* w;  // [N, K], contiguous
  const scalar_t* bias1;  // [N] or null
  const scalar_t* bias2;  // [N] or null
  scalar_t* out;          // [n, N], row stride ldo
  int64_t ldo;
  bool accumulate;  // add to out instead of overwriting it
};

// Columns [begin, end) of out.
template <typename scalar_t>
using SmallGemmCols = void (*)(const SmallGemm<scalar_t>&, int64_t begin, int64_t end);

template <typename scalar_t>
SmallGemmCols<scalar_t> small_gemm_cols();

// g over all N columns of out, split across threads for big enough steps (float, double).
template <typename scalar_t>
void run_small_gemm(const SmallGemm<scalar_t>& g, int64_t N);

// The same product against a weight already transposed: out[r, :] (+)= a[r, :] @ b, with b
// [K, N] (row stride ldb, unit column stride). Each of a's entries is broadcast against a row
// of b, so there are no horizontal sums, on which the dot-product kernel above spends most of a
// few-row step. Worth it when one weight serves many steps, which pay
// for the transpose once (RecurrentGemm).
template <typename scalar_t>
struct SmallGemmKMajor {
  const scalar_t* a;  // [n, K], row stride lda
  int64_t lda, n, K;
  const scalar_t* b;  // [K, N], row stride ldb
  int64_t ldb;
  scalar_t* out;  // [n, N], row stride ldo
  int64_t ldo;
  bool accumulate;  // add to out instead of overwriting it
};

// Columns [begin, end) of out.
template <typename scalar_t>
using SmallGemmKMajorCols = void (*)(const SmallGemmKMajor<scalar_t>&, int64_t begin, int64_t end);

template <typename scalar_t>
SmallGemmKMajorCols<scalar_t> small_gemm_kmajor_cols();

// g over all N columns of out, split across threads for big enough steps (float, double).
template <typename scalar_t>
void run_small_gemm_kmajor(const SmallGemmKMajor<scalar_t>& g, int64_t N);

// Whether small_rows_gemm runs rows [n, K] @ weight^T: float or double, few rows, dense
// operands (the weight contiguous, each row contiguous).
bool small_gemm_applies(const at::Tensor& rows, const at::Tensor& weight);

// out (+)= rows @ weight^T + bias1 + bias2 (undefined biases: none), out [n, N] with contiguous rows.
void small_rows_gemm(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& bias1,
                     const at::Tensor& bias2, at::Tensor& out, bool accumulate);

}  // namespace cpu
}  // namespace lstm_ext
