// A layer's weight gradients: sum_i a_i^T @ b_i over every step's rows at once, e.g.
// dW_ih = dgates^T @ x, and dW_hh = dgates^T @ h_prev in two parts (the first step's rows
// against h0, the others against the output shifted by one step), rounded once.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

namespace lstm_ext {

// One term a^T @ b: a [K, M] and b [K, C], each with contiguous rows; every term has the same M
// and C, and K may differ (or be 0).
using TransposedTerm = std::pair<at::Tensor, at::Tensor>;

// sum_i a_i^T @ b_i, a new [M, C] tensor of a's dtype. CPU tensors run the CPU's own kernel where
// it applies (float32 on AVX2 and AVX-512: runtime/cpu/gemm/outer_product.h, which reads a and b as
// they lie); anything else runs at::mm and addmm_.
at::Tensor transposed_product(const std::vector<TransposedTerm>& terms);

// The CPU's kernel, which returns an undefined tensor where it does not apply. The CPU backend
// registers it when the library loads; a build without CPU kernels (LSTM_EXT_CUDA_ONLY) has none.
using TransposedProductKernel = at::Tensor (*)(const std::vector<TransposedTerm>& terms);
void register_cpu_transposed_product(TransposedProductKernel kernel);

}  // namespace lstm_ext
