// The four GRU ops, written once over a backend's gru_forward / gru_backward (see
// cpu/gru_layer.h), so each backend registers the same argument checks and the same
// GRUCell-as-one-step mapping, as op_wrappers.h does for the LSTM.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>

#include "gru/gru_args.h"

namespace lstm_ext {

template <typename Backend>
struct GruOps {
  using Tensor2 = std::tuple<at::Tensor, at::Tensor>;
  using Tensor3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
  using Tensor6 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

  static Tensor3 gru_layer(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                           const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                           const std::optional<at::Tensor>& b_hh, const std::optional<at::Tensor>& batch_sizes,
                           bool reverse) {
    const LayerShape s =
        check_gru_layer_forward(input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, "lstm_ext::gru_layer");
    auto r = Backend::gru_forward(s, input, h0, w_ih, w_hh, b_ih, b_hh, reverse);
    return {r.output, r.h_n, r.gates};
  }

  static Tensor6 gru_layer_backward(const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                    const at::Tensor& input, const at::Tensor& h0, const at::Tensor& w_ih,
                                    const at::Tensor& w_hh, const std::optional<at::Tensor>& batch_sizes,
                                    bool reverse, const at::Tensor& output, const at::Tensor& gates,
                                    std::array<bool, 3> output_mask) {
    const LayerShape s =
        check_gru_layer_backward(grad_output, grad_h_n, input, h0, w_ih, w_hh, batch_sizes, output, gates);
    auto g = Backend::gru_backward(s, grad_output, grad_h_n, input, h0, w_ih, w_hh, reverse, output, gates,
                                   output_mask);
    return {g.input, g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
  }

  // A cell is a layer of one dense step: input [B, I] is viewed as [1, B, I].
  static Tensor2 gru_cell(const at::Tensor& input, const at::Tensor& hx, const at::Tensor& w_ih,
                          const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                          const std::optional<at::Tensor>& b_hh) {
    check_gru_cell_forward(input, hx, w_ih, w_hh, b_ih, b_hh, "lstm_ext::gru_cell");
    auto r = Backend::gru_forward(one_step(input, w_hh), input.unsqueeze(0), hx, w_ih, w_hh, b_ih, b_hh, false);
    return {r.h_n, r.gates};
  }

  static Tensor6 gru_cell_backward(const at::Tensor& grad_hy, const at::Tensor& input, const at::Tensor& hx,
                                   const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& gates,
                                   std::array<bool, 3> output_mask) {
    check_gru_cell_backward(grad_hy, input, hx, w_ih, w_hh, gates);
    const LayerShape s = one_step(input, w_hh);
    // With one step, h_n is the output: its gradient enters once, as grad_h_n. The output
    // argument is only read as the previous step's h, which one step never has.
    const at::Tensor no_output_grad = at::zeros({1, s.B, s.H}, input.options());
    auto g = Backend::gru_backward(s, no_output_grad, grad_hy, input.unsqueeze(0), hx, w_ih, w_hh, false,
                                   /*output=*/hx.unsqueeze(0), gates, output_mask);
    const at::Tensor grad_input = output_mask[0] ? g.input.squeeze(0) : g.input;
    return {grad_input, g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
  }

 private:
  static LayerShape one_step(const at::Tensor& input, const at::Tensor& w_hh) {
    return one_dense_step(input.size(0), input.size(1), w_hh.size(0) / 3);
  }
};

}  // namespace lstm_ext
