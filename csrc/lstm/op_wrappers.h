// The four ops, written once over a backend's layer_forward / layer_backward, so each
// backend registers the same argument checks and the same LSTMCell-as-one-step mapping.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <tuple>

#include "lstm/lstm_args.h"
#include "runtime/no_autocast.h"

namespace lstm_ext {

// The ops' results, in their schemas' order (ops.cpp).
// (output, h_n, c_n, gates, cells)
using LstmLayerResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
// (grad_input, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_bias, grad_w_hr)
using LstmLayerGrads =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
// (hy, cy, gates)
using LstmCellResult = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
// (grad_input, grad_hx, grad_cx, grad_w_ih, grad_w_hh, grad_bias)
using LstmCellGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Every op runs under NoAutocast: see runtime/no_autocast.h for why.

template <typename Backend>
struct Ops {
  static LstmLayerResult lstm_layer(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0,
                                    const at::Tensor& w_ih, const at::Tensor& w_hh,
                                    const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                                    const std::optional<at::Tensor>& w_hr,
                                    const std::optional<at::Tensor>& batch_sizes, bool reverse) {
    const NoAutocast no_autocast;
    const LayerShape shape =
        check_layer_forward(input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, "lstm_ext::lstm_layer");
    auto result = Backend::layer_forward(shape, input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse);
    return {result.output, result.h_n, result.c_n, result.gates, result.cells};
  }

  static LstmLayerGrads lstm_layer_backward(const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                            const at::Tensor& grad_c_n, const at::Tensor& input,
                                            const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih,
                                            const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr,
                                            const std::optional<at::Tensor>& batch_sizes, bool reverse,
                                            const at::Tensor& output, const at::Tensor& gates,
                                            const at::Tensor& cells, std::array<bool, 3> output_mask) {
    const NoAutocast no_autocast;
    const LayerShape shape = check_layer_backward(grad_output, grad_h_n, grad_c_n, input, h0, c0, w_ih, w_hh,
                                                  w_hr, batch_sizes, output, gates, cells);
    auto grads = Backend::layer_backward(shape, grad_output, grad_h_n, grad_c_n, input, h0, c0, w_ih, w_hh, w_hr,
                                         reverse, output, gates, cells, output_mask);
    return {grads.input, grads.h0, grads.c0, grads.w_ih, grads.w_hh, grads.bias, grads.w_hr};
  }

  // A cell is a layer of one dense step: input [B, I] is viewed as [1, B, I].
  static LstmCellResult lstm_cell(const at::Tensor& input, const at::Tensor& hx, const at::Tensor& cx,
                                  const at::Tensor& w_ih, const at::Tensor& w_hh,
                                  const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh) {
    const NoAutocast no_autocast;
    check_cell_forward(input, hx, cx, w_ih, w_hh, b_ih, b_hh);
    const LayerShape shape = one_step(input, w_hh);
    auto result =
        Backend::layer_forward(shape, input.unsqueeze(0), hx, cx, w_ih, w_hh, b_ih, b_hh, std::nullopt, false);
    return {result.h_n, result.c_n, result.gates};
  }

  static LstmCellGrads lstm_cell_backward(const at::Tensor& grad_hy, const at::Tensor& grad_cy,
                                          const at::Tensor& input, const at::Tensor& hx, const at::Tensor& cx,
                                          const at::Tensor& w_ih,
                                          const at::Tensor& w_hh, const at::Tensor& gates, const at::Tensor& cy,
                                          std::array<bool, 3> output_mask) {
    const NoAutocast no_autocast;
    check_cell_backward(grad_hy, grad_cy, input, hx, cx, w_ih, w_hh, gates, cy);
    const LayerShape shape = one_step(input, w_hh);
    // With one step, h_n is the output: its gradient enters once, as grad_h_n.
    const at::Tensor no_output_grad = at::zeros({1, shape.B, shape.H}, input.options());
    auto grads = Backend::layer_backward(shape, no_output_grad, grad_hy, grad_cy, input.unsqueeze(0), hx, cx, w_ih,
                                         w_hh, std::nullopt, false, /*output=*/hx.unsqueeze(0), gates,
                                         cy.to(opmath_dtype(cy.scalar_type())), output_mask);
    const at::Tensor grad_input = output_mask[0] ? grads.input.squeeze(0) : grads.input;
    return {grad_input, grads.h0, grads.c0, grads.w_ih, grads.w_hh, grads.bias};
  }

 private:
  static LayerShape one_step(const at::Tensor& input, const at::Tensor& w_hh) {
    return one_dense_step(input.size(0), input.size(1), w_hh.size(0) / 4);
  }
};

}  // namespace lstm_ext

// ---- registration (one block, shared by every backend's register file) ----
#include <torch/library.h>

namespace lstm_ext {

// A backend's kernels for the four ops: TORCH_LIBRARY_IMPL(lstm_ext, KEY, m) { register_ops<B>(m); }
template <typename Backend>
void register_ops(torch::Library& m) {
  m.impl("lstm_layer", &Ops<Backend>::lstm_layer);
  m.impl("lstm_layer_backward", &Ops<Backend>::lstm_layer_backward);
  m.impl("lstm_cell", &Ops<Backend>::lstm_cell);
  m.impl("lstm_cell_backward", &Ops<Backend>::lstm_cell_backward);
}

}  // namespace lstm_ext
