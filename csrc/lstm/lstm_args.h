// Argument checks of the LSTM ops, shared by every backend. A direct torch.ops.lstm_ext.lstm_*
// call with bad shapes, dtypes or devices must raise here, before any kernel touches a pointer.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "runtime/layer_checks.h"

namespace lstm_ext {

LayerShape check_layer_forward(
    const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih,
    const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
    const std::optional<at::Tensor>& w_hr, const std::optional<at::Tensor>& batch_sizes, const char* op);

LayerShape check_layer_backward(
    const at::Tensor& grad_output, const at::Tensor& grad_h_n, const at::Tensor& grad_c_n, const at::Tensor& input,
    const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const std::optional<at::Tensor>& w_hr, const std::optional<at::Tensor>& batch_sizes, const at::Tensor& output,
    const at::Tensor& gates, const at::Tensor& cells);

// input [B, I], hx and cx [B, H]: one step of an LSTMCell.
void check_cell_forward(
    const at::Tensor& input, const at::Tensor& hx, const at::Tensor& cx, const at::Tensor& w_ih,
    const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh);

// grad_hy, grad_cy [B, H]; gates [B, 4H] and cy [B, H] as lstm_cell returned them.
void check_cell_backward(
    const at::Tensor& grad_hy, const at::Tensor& grad_cy, const at::Tensor& input, const at::Tensor& hx,
    const at::Tensor& cx, const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& gates,
    const at::Tensor& cy);

}  // namespace lstm_ext
