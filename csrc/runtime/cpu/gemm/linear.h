// lstm_ext::linear on the CPU: F.linear's rows @ weight^T + bias on the layer kernels'
// projection GEMM, for the projections that run outside a layer kernel (the variants').
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace lstm_ext {
namespace cpu {

// input [rows, in], weight [out, in], bias [out] or none -> [rows, out].
at::Tensor linear(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias);

}  // namespace cpu
}  // namespace lstm_ext
