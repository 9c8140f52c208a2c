// The CPU GRU layer kernels, for the op registrations. Arguments are checked by the caller.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>

#include "runtime/layer_checks.h"

namespace lstm_ext {

struct GruForward {
  at::Tensor output, h_n, gates;
};

// Masked-out gradients are empty tensors.
struct GruBackward {
  at::Tensor input, h0, w_ih, w_hh, b_ih, b_hh;
};

namespace cpu {

GruForward gru_forward(const LayerShape& s, const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                       const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                       const std::optional<at::Tensor>& b_hh, bool reverse);

GruBackward gru_backward(const LayerShape& s, const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                         const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                         const at::Tensor& w_hh, bool reverse, const at::Tensor& output, const at::Tensor& gates,
                         std::array<bool, 3> mask);

}  // namespace cpu
}  // namespace lstm_ext
