// The CPU layer kernels, for the op registrations. Arguments are checked by the caller.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>

#include "lstm_args.h"

namespace lstm_ext {

struct LayerForward {
  at::Tensor output, h_n, c_n, gates, cells;
};

// Masked-out gradients are empty tensors; bias serves both b_ih and b_hh.
struct LayerBackward {
  at::Tensor input, h0, c0, w_ih, w_hh, bias, w_hr;
};

namespace cpu {

LayerForward layer_forward(const LayerShape& s, const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0,
                           const at::Tensor& w_ih, const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                           const std::optional<at::Tensor>& b_hh, const std::optional<at::Tensor>& w_hr,
                           bool reverse);

LayerBackward layer_backward(const LayerShape& s, const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                             const at::Tensor& grad_c_n, const at::Tensor& input, const at::Tensor& h0,
                             const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                             const std::optional<at::Tensor>& w_hr, bool reverse, const at::Tensor& output,
                             const at::Tensor& gates, const at::Tensor& cells, std::array<bool, 3> mask);

}  // namespace cpu
}  // namespace lstm_ext
