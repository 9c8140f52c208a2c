// Picks the pointwise kernels for this CPU once, from ATen's own reading of it.
#include "lstm/cpu/pointwise.h"
#include "gru/cpu/gru_pointwise.h"
#include "runtime/cpu/capability.h"
#include "runtime/cpu/small_gemm.h"

#include <ATen/Version.h>
#include <c10/util/BFloat16.h>

#include <string>

namespace lstm_ext {
namespace cpu {

template <typename scalar_t> ForwardRows<scalar_t> forward_rows_DEFAULT();
template <typename scalar_t> BackwardRows<scalar_t> backward_rows_DEFAULT();
#if defined(__x86_64__)
template <typename scalar_t> ForwardRows<scalar_t> forward_rows_AVX2();
template <typename scalar_t> BackwardRows<scalar_t> backward_rows_AVX2();
template <typename scalar_t> ForwardRows<scalar_t> forward_rows_AVX512();
template <typename scalar_t> BackwardRows<scalar_t> backward_rows_AVX512();
#endif
template <typename scalar_t> GruForwardRows<scalar_t> gru_forward_rows_DEFAULT();
template <typename scalar_t> GruBackwardRows<scalar_t> gru_backward_rows_DEFAULT();
#if defined(__x86_64__)
template <typename scalar_t> GruForwardRows<scalar_t> gru_forward_rows_AVX2();
template <typename scalar_t> GruBackwardRows<scalar_t> gru_backward_rows_AVX2();
template <typename scalar_t> GruForwardRows<scalar_t> gru_forward_rows_AVX512();
template <typename scalar_t> GruBackwardRows<scalar_t> gru_backward_rows_AVX512();
#endif
template <typename scalar_t> SmallGemmCols<scalar_t> small_gemm_cols_DEFAULT();
template <typename scalar_t> SmallGemmKMajorCols<scalar_t> small_gemm_kmajor_cols_DEFAULT();
#if defined(__x86_64__)
template <typename scalar_t> SmallGemmCols<scalar_t> small_gemm_cols_AVX2();
template <typename scalar_t> SmallGemmCols<scalar_t> small_gemm_cols_AVX512();
template <typename scalar_t> SmallGemmKMajorCols<scalar_t> small_gemm_kmajor_cols_AVX2();
template <typename scalar_t> SmallGemmKMajorCols<scalar_t> small_gemm_kmajor_cols_AVX512();
#endif

template <typename scalar_t>
ForwardRows<scalar_t> forward_rows() {
  LSTM_EXT_BY_CAPABILITY(forward_rows, scalar_t)
}

template <typename scalar_t>
BackwardRows<scalar_t> backward_rows() {
  LSTM_EXT_BY_CAPABILITY(backward_rows, scalar_t)
}

template <typename scalar_t>
GruForwardRows<scalar_t> gru_forward_rows() {
  LSTM_EXT_BY_CAPABILITY(gru_forward_rows, scalar_t)
}

template <typename scalar_t>
GruBackwardRows<scalar_t> gru_backward_rows() {
  LSTM_EXT_BY_CAPABILITY(gru_backward_rows, scalar_t)
}

template <typename scalar_t>
SmallGemmCols<scalar_t> small_gemm_cols() {
  LSTM_EXT_BY_CAPABILITY(small_gemm_cols, scalar_t)
}

template <typename scalar_t>
SmallGemmKMajorCols<scalar_t> small_gemm_kmajor_cols() {
  LSTM_EXT_BY_CAPABILITY(small_gemm_kmajor_cols, scalar_t)
}

template ForwardRows<float> forward_rows<float>();
template ForwardRows<double> forward_rows<double>();
template ForwardRows<c10::BFloat16> forward_rows<c10::BFloat16>();
template BackwardRows<float> backward_rows<float>();
template BackwardRows<double> backward_rows<double>();
template BackwardRows<c10::BFloat16> backward_rows<c10::BFloat16>();
template GruForwardRows<float> gru_forward_rows<float>();
template GruForwardRows<double> gru_forward_rows<double>();
template GruForwardRows<c10::BFloat16> gru_forward_rows<c10::BFloat16>();
template GruBackwardRows<float> gru_backward_rows<float>();
template GruBackwardRows<double> gru_backward_rows<double>();
template GruBackwardRows<c10::BFloat16> gru_backward_rows<c10::BFloat16>();
template SmallGemmCols<float> small_gemm_cols<float>();
template SmallGemmCols<double> small_gemm_cols<double>();
template SmallGemmKMajorCols<float> small_gemm_kmajor_cols<float>();
template SmallGemmKMajorCols<double> small_gemm_kmajor_cols<double>();

}  // namespace cpu
}  // namespace lstm_ext
