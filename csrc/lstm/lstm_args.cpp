#include "lstm/lstm_args.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace lstm_ext {

namespace {

// One LSTMCell step's arguments; op names the op in the messages.
void check_cell(const at::Tensor& input, const at::Tensor& hx, const at::Tensor& cx, const at::Tensor& w_ih,
                const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                const char* op) {
  check_floating(input, op);
  TORCH_CHECK(input.dim() == 2, op, ": expected input of shape [batch, input_size], got ", input.dim(), "-D");
  LayerShape s;
  s.B = input.size(0);
  s.I = input.size(1);
  check_weights(s, input, w_ih, w_hh, b_ih, b_hh, std::nullopt, op, 4);
  check_shape(hx, {s.B, s.H}, "hx", op);
  check_shape(cx, {s.B, s.H}, "cx", op);
  check_like(hx, input, "hx", op);
  check_like(cx, input, "cx", op);
}

}  // namespace

LayerShape check_layer_forward(
    const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih,
    const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
    const std::optional<at::Tensor>& w_hr, const std::optional<at::Tensor>& batch_sizes, const char* op) {
  check_floating(input, op);
  LayerShape s;
  check_steps(s, input, h0, batch_sizes, op);
  check_weights(s, input, w_ih, w_hh, b_ih, b_hh, w_hr, op, 4);
  check_shape(h0, {s.B, s.P}, "h0", op);
  check_shape(c0, {s.B, s.H}, "c0", op);
  check_like(h0, input, "h0", op);
  check_like(c0, input, "c0", op);
  return s;
}

LayerShape check_layer_backward(
    const at::Tensor& grad_output, const at::Tensor& grad_h_n, const at::Tensor& grad_c_n, const at::Tensor& input,
    const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const std::optional<at::Tensor>& w_hr, const std::optional<at::Tensor>& batch_sizes, const at::Tensor& output,
    const at::Tensor& gates, const at::Tensor& cells) {
  const char* op = "lstm_ext::lstm_layer_backward";
  LayerShape s = check_layer_forward(input, h0, c0, w_ih, w_hh, std::nullopt, std::nullopt, w_hr, batch_sizes, op);
  const c10::DimVector out_sizes = output_sizes(s);
  check_shape(output, out_sizes, "output", op);
  check_shape(grad_output, out_sizes, "grad_output", op);
  check_shape(grad_h_n, {s.B, s.P}, "grad_h_n", op);
  check_shape(grad_c_n, {s.B, s.H}, "grad_c_n", op);
  check_like(output, input, "output", op);
  check_like(grad_output, input, "grad_output", op);
  check_like(grad_h_n, input, "grad_h_n", op);
  check_like(grad_c_n, input, "grad_c_n", op);
  check_saved(gates, {s.N, 4 * s.H}, input, "gates", op);
  check_saved(cells, {s.N, s.H}, input, "cells", op);
  return s;
}

void check_cell_forward(
    const at::Tensor& input, const at::Tensor& hx, const at::Tensor& cx, const at::Tensor& w_ih,
    const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh) {
  check_cell(input, hx, cx, w_ih, w_hh, b_ih, b_hh, "lstm_ext::lstm_cell");
}

}  // namespace lstm_ext

namespace lstm_ext {

void check_cell_backward(
    const at::Tensor& grad_hy, const at::Tensor& grad_cy, const at::Tensor& input, const at::Tensor& hx,
    const at::Tensor& cx, const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& gates,
    const at::Tensor& cy) {
  const char* op = "lstm_ext::lstm_cell_backward";
  check_cell(input, hx, cx, w_ih, w_hh, std::nullopt, std::nullopt, op);
  const int64_t B = input.size(0), H = w_hh.size(0) / 4;
  check_shape(grad_hy, {B, H}, "grad_hy", op);
  check_shape(grad_cy, {B, H}, "grad_cy", op);
  check_shape(cy, {B, H}, "cy", op);
  check_like(grad_hy, input, "grad_hy", op);
  check_like(grad_cy, input, "grad_cy", op);
  check_like(cy, input, "cy", op);
  check_saved(gates, {B, 4 * H}, input, "gates", op);
}

}  // namespace lstm_ext
