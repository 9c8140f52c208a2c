// The four GRU ops, written once over a backend's gru_forward / gru_backward (see
// cpu/gru_layer.h), so each backend registers the same argument checks and the same
// GRUCell-as-one-step mapping, as lstm/op_wrappers.h does for the LSTM, and every op runs
// under NoAutocast as the LSTM's do (runtime/no_autocast.h says why).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>

#include "gru/gru_args.h"
#include "runtime/no_autocast.h"

namespace lstm_ext {

template <typename Backend>
struct GruOps {
  // The ops' results, in their schemas' order (ops.cpp).
  using LayerResult = std::tuple<at::Tensor, at::Tensor, at::Tensor>;  // (output, h_n, gates)
  using CellResult = std::tuple<at::Tensor, at::Tensor>;              // (hy, gates)
  // (grad_input, grad_h0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh), for a layer and a cell
  using Grads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

  static LayerResult gru_layer(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                               const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                               const std::optional<at::Tensor>& b_hh, const std::optional<at::Tensor>& batch_sizes,
                               bool reverse) {
    const NoAutocast no_autocast;
    const LayerShape shape =
        check_gru_layer_forward(input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, "lstm_ext::gru_layer");
    auto result = Backend::gru_forward(shape, input, h0, w_ih, w_hh, b_ih, b_hh, reverse);
    return {result.output, result.h_n, result.gates};
  }

  static Grads gru_layer_backward(const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                  const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                                  const at::Tensor& w_hh, const std::optional<at::Tensor>& batch_sizes,
                                  bool reverse, const at::Tensor& output, const at::Tensor& gates,
                                  std::array<bool, 3> output_mask) {
    const NoAutocast no_autocast;
    const LayerShape shape =
        check_gru_layer_backward(grad_output, grad_h_n, input, h0, w_ih, w_hh, batch_sizes, output, gates);
    auto grads = Backend::gru_backward(shape, grad_output, grad_h_n, input, h0, w_ih, w_hh, reverse, output, gates,
                                       output_mask);
    return {grads.input, grads.h0, grads.w_ih, grads.w_hh, grads.b_ih, grads.b_hh};
  }

  // A cell is a layer of one dense step: input [B, I] is viewed as [1, B, I].
  static CellResult gru_cell(const at::Tensor& input, const at::Tensor& hx, const at::Tensor& w_ih,
                             const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                             const std::optional<at::Tensor>& b_hh) {
    const NoAutocast no_autocast;
    check_gru_cell_forward(input, hx, w_ih, w_hh, b_ih, b_hh, "lstm_ext::gru_cell");
    auto result = Backend::gru_forward(one_step(input, w_hh), input.unsqueeze(0), hx, w_ih, w_hh, b_ih, b_hh, false);
    return {result.h_n, result.gates};
  }

  static Grads gru_cell_backward(const at::Tensor& grad_hy, const at::Tensor& input, const at::Tensor& hx,
                                 const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& gates,
                                 std::array<bool, 3> output_mask) {
    const NoAutocast no_autocast;
    check_gru_cell_backward(grad_hy, input, hx, w_ih, w_hh, gates);
    const LayerShape shape = one_step(input, w_hh);
    // With one step, h_n is the output: its gradient enters once, as grad_h_n. The output
    // argument is only read as the previous step's h, which one step never has.
    const at::Tensor no_output_grad = at::zeros({1, shape.B, shape.H}, input.options());
    auto grads = Backend::gru_backward(shape, no_output_grad, grad_hy, input.unsqueeze(0), hx, w_ih, w_hh, false,
                                       /*output=*/hx.unsqueeze(0), gates, output_mask);
    const at::Tensor grad_input = output_mask[0] ? grads.input.squeeze(0) : grads.input;
    return {grad_input, grads.h0, grads.w_ih, grads.w_hh, grads.b_ih, grads.b_hh};
  }

 private:
  static LayerShape one_step(const at::Tensor& input, const at::Tensor& w_hh) {
    return one_dense_step(input.size(0), input.size(1), w_hh.size(0) / 3);
  }
};

}  // namespace lstm_ext
