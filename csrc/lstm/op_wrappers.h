// The four ops, written once over a backend's layer_forward / layer_backward, so each
// backend registers the same argument checks and the same LSTMCell-as-one-step mapping.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <tuple>

#include "lstm/lstm_args.h"

namespace lstm_ext {

using Tensor5 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using Tensor7 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using Tensor3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Tensor6 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The kernels' own ATen calls run in the dtypes the op was given: inside an autocast region a
// functional at::addmm would otherwise be cast to the autocast dtype under the kernel's feet.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

template <typename Backend>
struct Ops {
  static Tensor5 lstm_layer(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0,
                            const at::Tensor& w_ih, const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                            const std::optional<at::Tensor>& b_hh, const std::optional<at::Tensor>& w_hr,
                            const std::optional<at::Tensor>& batch_sizes, bool reverse) {
    const NoAutocast no_autocast;
    const LayerShape s =
        check_layer_forward(input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, "lstm_ext::lstm_layer");
    auto r = Backend::layer_forward(s, input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, reverse);
    return {r.output, r.h_n, r.c_n, r.gates, r.cells};
  }

  static Tensor7 lstm_layer_backward(const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                     const at::Tensor& grad_c_n, const at::Tensor& input, const at::Tensor& h0,
                                     const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                     const std::optional<at::Tensor>& w_hr,
                                     const std::optional<at::Tensor>& batch_sizes, bool reverse,
                                     const at::Tensor& output, const at::Tensor& gates, const at::Tensor& cells,
                                     std::array<bool, 3> output_mask) {
    const NoAutocast no_autocast;
    const LayerShape s = check_layer_backward(grad_output, grad_h_n, grad_c_n, input, h0, c0, w_ih, w_hh, w_hr,
                                              batch_sizes, output, gates, cells);
    auto g = Backend::layer_backward(s, grad_output, grad_h_n, grad_c_n, input, h0, c0, w_ih, w_hh, w_hr, reverse,
                                     output, gates, cells, output_mask);
    return {g.input, g.h0, g.c0, g.w_ih, g.w_hh, g.bias, g.w_hr};
  }

  // A cell is a layer of one dense step: input [B, I] is viewed as [1, B, I].
  static Tensor3 lstm_cell(const at::Tensor& input, const at::Tensor& hx, const at::Tensor& cx,
                           const at::Tensor& w_ih, const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                           const std::optional<at::Tensor>& b_hh) {
    const NoAutocast no_autocast;
    check_cell_forward(input, hx, cx, w_ih, w_hh, b_ih, b_hh);
    const LayerShape s = one_step(input, w_hh);
    auto r = Backend::layer_forward(s, input.unsqueeze(0), hx, cx, w_ih, w_hh, b_ih, b_hh, std::nullopt, false);
    return {r.h_n, r.c_n, r.gates};
  }

  static Tensor6 lstm_cell_backward(const at::Tensor& grad_hy, const at::Tensor& grad_cy, const at::Tensor& input,
                                    const at::Tensor& hx, const at::Tensor& cx, const at::Tensor& w_ih,
                                    const at::Tensor& w_hh, const at::Tensor& gates, const at::Tensor& cy,
                                    std::array<bool, 3> output_mask) {
    const NoAutocast no_autocast;
    check_cell_backward(grad_hy, grad_cy, input, hx, cx, w_ih, w_hh, gates, cy);
    const LayerShape s = one_step(input, w_hh);
    // With one step, h_n is the output: its gradient enters once, as grad_h_n.
    const at::Tensor no_output_grad = at::zeros({1, s.B, s.H}, input.options());
    auto g = Backend::layer_backward(s, no_output_grad, grad_hy, grad_cy, input.unsqueeze(0), hx, cx, w_ih, w_hh,
                                     std::nullopt, false, /*output=*/hx.unsqueeze(0), gates,
                                     cy.to(opmath_dtype(cy.scalar_type())), output_mask);
    const at::Tensor grad_input = output_mask[0] ? g.input.squeeze(0) : g.input;
    return {grad_input, g.h0, g.c0, g.w_ih, g.w_hh, g.bias};
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
