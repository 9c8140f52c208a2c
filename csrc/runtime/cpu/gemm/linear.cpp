// The variants' input projection (and its input gradient) is one big GEMM outside the layer
// kernel. F.linear runs it on MKL's sgemm, slower at these sizes than the layer kernels'
// input_projection (oneDNN on a packed weight). This op gives the variants that GEMM.
#include "runtime/cpu/gemm/linear.h"

#include <ATen/ATen.h>

#include "runtime/cpu/gemm/recurrent_gemm.h"

namespace lstm_ext {
namespace cpu {

at::Tensor linear(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "lstm_ext::linear";
  TORCH_CHECK(input.dim() == 2, op, ": expected input of shape [rows, in_features], got ", input.sizes());
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == input.size(1), op, ": expected weight of shape [out_features, ",
              input.size(1), "], got ", weight.sizes());
  const at::ScalarType dtype = input.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16, op,
              ": expected float32, float64 or bfloat16 input, got ", dtype);
  TORCH_CHECK(weight.scalar_type() == dtype, op, ": expected weight of dtype ", dtype, " like input, got ",
              weight.scalar_type());
  TORCH_CHECK(input.is_cpu() && weight.is_cpu(), op, ": expected CPU tensors, got input on ", input.device(),
              " and weight on ", weight.device());
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), op, ": expected bias of shape [",
                weight.size(0), "], got ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == dtype && bias->is_cpu(), op, ": expected bias of dtype ", dtype,
                " on the CPU like input, got ", bias->scalar_type(), " on ", bias->device());
  }
  // Nothing to multiply: ATen's answer (zeros, plus the bias), not a GEMM library's edge case.
  if (input.numel() == 0 || weight.numel() == 0) return at::linear(input, weight, bias);
  return input_projection(input.contiguous(), weight, bias, std::nullopt);
}

}  // namespace cpu
}  // namespace lstm_ext
