// The CPU layer kernels of the GRU, for runtime/layer_ops.h (which checks the arguments first).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>

#include "runtime/cell_traits.h"
#include "runtime/layer_checks.h"

namespace lstm_ext {

// gru_layer's results: (output, h_n, gates).
using GruLayerResult = Tensors<3>;
// gru_layer_backward's: (grad_input, grad_h0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh); the two
// bias gradients differ in the n block. Masked-out gradients are empty tensors.
using GruLayerGrads = Tensors<6>;

namespace cpu {

GruLayerResult gru_forward(const LayerShape& s, const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                           const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                           const std::optional<at::Tensor>& b_hh, bool reverse);

GruLayerGrads gru_backward(const LayerShape& s, const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                           const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                           const at::Tensor& w_hh, bool reverse, const at::Tensor& output, const at::Tensor& gates,
                           std::array<bool, 3> mask);

}  // namespace cpu
}  // namespace lstm_ext
