// Argument checks of the GRU ops, shared by every backend, built from runtime/layer_checks.h's blocks.
// A direct torch.ops.lstm_ext.gru_* call with bad shapes, dtypes or devices raises here.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "runtime/layer_checks.h"

namespace lstm_ext {

// input [T, B, I] (dense) or [N, I] with batch_sizes; h0 [B, H]; w_ih [3H, I], w_hh [3H, H],
// b_ih / b_hh [3H] or None.
LayerShape check_gru_layer_forward(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                                   const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                                   const std::optional<at::Tensor>& b_hh,
                                   const std::optional<at::Tensor>& batch_sizes, const char* op);

// The forward's arguments, plus output like the input's layout and gates [N, 4H] (op-math dtype).
LayerShape check_gru_layer_backward(const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                    const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                                    const at::Tensor& w_hh, const std::optional<at::Tensor>& batch_sizes,
                                    const at::Tensor& output, const at::Tensor& gates);

// input [B, I], hx [B, H]: one step of a GRUCell.
void check_gru_cell_forward(const at::Tensor& input, const at::Tensor& hx, const at::Tensor& w_ih,
                            const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                            const std::optional<at::Tensor>& b_hh, const char* op);

// grad_hy [B, H]; gates [B, 4H] as gru_cell returned them.
void check_gru_cell_backward(const at::Tensor& grad_hy, const at::Tensor& input, const at::Tensor& hx,
                             const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& gates);

}  // namespace lstm_ext
