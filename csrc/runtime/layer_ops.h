// The four ops of a cell family, written once for every family and every backend: a layer op
// (one layer-direction over a whole sequence), its backward, a cell op (one step, as nn.LSTMCell
// or nn.GRUCell) and its backward. Each op takes the NoAutocast guard (runtime/no_autocast.h says
// why), checks its arguments (layer_checks.h) and calls the backend's layer kernel; a cell op is
// a layer of one dense step. A family describes its ops in a CellTraits (cell_traits.h), and
// each backend registers its two kernels with one call (gru/cpu/register.cpp):
//   TORCH_LIBRARY_IMPL(lstm_ext, CPU, m) { register_layer_ops<kGruCell, &gru_forward, &gru_backward>(m); }
//
// The kernels take the layer op's arguments in schema order, after the checked LayerShape, and
// return the layer op's results in schema order, as Tensors<N> ([..]: with CellTraits::cell_state
// or ::projection only):
//   Forward(shape, input, h0, [c0], w_ih, w_hh, b_ih, b_hh, [w_hr], reverse)
//     -> (output, h_n, [c_n], gates, [cells])
//   Backward(shape, grad_output, grad_h_n, [grad_c_n], input, h0, [c0], w_ih, w_hh, [w_hr], reverse,
//            output, gates, [cells], output_mask)
//     -> (grad_input, grad_h0, [grad_c0], grad_w_ih, grad_w_hh, the family's bias gradients, [grad_w_hr])
// The cell ops return what one step has use for: (hy, [cy], gates), and the layer's gradients
// without grad_w_hr.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <array>
#include <optional>
#include <tuple>
#include <utility>

#include "runtime/cell_traits.h"
#include "runtime/layer_checks.h"
#include "runtime/no_autocast.h"

namespace lstm_ext {

// One tensor per index. The optional parts of a schema (c, w_hr) are packs of zero or one index,
// so one function spells every family's signature, as the dispatcher needs it.
template <size_t I>
using TensorArg = typename Indexed<I, const at::Tensor&>::type;
template <size_t I>
using OptionalTensorArg = typename Indexed<I, const std::optional<at::Tensor>&>::type;

namespace layer_ops_detail {

// The address of a pack of zero or one tensor: null for none.
inline const at::Tensor* pointer_to() { return nullptr; }
inline const at::Tensor* pointer_to(const at::Tensor& t) { return &t; }

inline std::optional<at::Tensor> optional_of() { return std::nullopt; }
inline std::optional<at::Tensor> optional_of(const std::optional<at::Tensor>& t) { return t; }

// The result type of a kernel.
template <typename Result, typename... Args>
Result result_of(Result (*)(Args...));

template <size_t>
std::optional<at::Tensor> none() {
  return std::nullopt;
}

// Elements [First, First + N) of a tuple of tensors.
template <size_t First, size_t N, typename Tuple, size_t... I>
Tensors<N> slice(const Tuple& t, std::index_sequence<I...>) {
  return {std::get<First + I>(t)...};
}
template <size_t First, size_t N, typename Tuple>
Tensors<N> slice(const Tuple& t) {
  return slice<First, N>(t, std::make_index_sequence<N>());
}

}  // namespace layer_ops_detail

template <const CellTraits& Cell, auto Forward, auto Backward,
          typename CellState = std::make_index_sequence<Cell.cell_state ? 1 : 0>,
          typename Projection = std::make_index_sequence<Cell.projection ? 1 : 0>>
struct LayerOps;

// C... is one index with a cell state c, none without; P... the same for the projection w_hr.
template <const CellTraits& Cell, auto Forward, auto Backward, size_t... C, size_t... P>
struct LayerOps<Cell, Forward, Backward, std::index_sequence<C...>, std::index_sequence<P...>> {
  using LayerResult = decltype(layer_ops_detail::result_of(Forward));
  using LayerGrads = decltype(layer_ops_detail::result_of(Backward));
  // (hy, [cy], gates): the layer's results after output, without the saved cells.
  static constexpr size_t kCellResults = 2 + sizeof...(C);
  // The layer's gradients without the projection's.
  static constexpr size_t kCellGrads = std::tuple_size_v<LayerGrads> - sizeof...(P);

  static LayerResult layer(const at::Tensor& input, const at::Tensor& h0, TensorArg<C>... c0, const at::Tensor& w_ih,
                           const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                           const std::optional<at::Tensor>& b_hh, OptionalTensorArg<P>... w_hr,
                           const std::optional<at::Tensor>& batch_sizes, bool reverse) {
    using namespace layer_ops_detail;
    const NoAutocast no_autocast;
    const LayerShape shape = check_layer_args(Cell.layer, Cell.gates, input, h0, pointer_to(c0...), w_ih, w_hh, b_ih,
                                              b_hh, optional_of(w_hr...), batch_sizes);
    return Forward(shape, input, h0, c0..., w_ih, w_hh, b_ih, b_hh, w_hr..., reverse);
  }

  static LayerGrads layer_backward(const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                   TensorArg<C>... grad_c_n, const at::Tensor& input, const at::Tensor& h0,
                                   TensorArg<C>... c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                   OptionalTensorArg<P>... w_hr, const std::optional<at::Tensor>& batch_sizes,
                                   bool reverse, const at::Tensor& output, const at::Tensor& gates,
                                   TensorArg<C>... cells, std::array<bool, 3> output_mask) {
    using namespace layer_ops_detail;
    const NoAutocast no_autocast;
    const LayerShape shape =
        check_layer_backward_args(Cell, grad_output, grad_h_n, pointer_to(grad_c_n...), input, h0, pointer_to(c0...),
                                  w_ih, w_hh, optional_of(w_hr...), batch_sizes, output, gates, pointer_to(cells...));
    return Backward(shape, grad_output, grad_h_n, grad_c_n..., input, h0, c0..., w_ih, w_hh, w_hr..., reverse, output,
                    gates, cells..., output_mask);
  }

  // A cell is a layer of one dense step: input [B, I] is viewed as [1, B, I].
  static Tensors<kCellResults> cell(const at::Tensor& input, const at::Tensor& hx, TensorArg<C>... cx,
                                    const at::Tensor& w_ih, const at::Tensor& w_hh,
                                    const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh) {
    using namespace layer_ops_detail;
    const NoAutocast no_autocast;
    check_cell_args(Cell, Cell.cell, input, hx, pointer_to(cx...), w_ih, w_hh, b_ih, b_hh);
    const LayerResult result =
        Forward(one_step(input, w_hh), input.unsqueeze(0), hx, cx..., w_ih, w_hh, b_ih, b_hh, none<P>()..., false);
    return slice<1, kCellResults>(result);
  }

  static Tensors<kCellGrads> cell_backward(const at::Tensor& grad_hy, TensorArg<C>... grad_cy, const at::Tensor& input,
                                           const at::Tensor& hx, TensorArg<C>... cx, const at::Tensor& w_ih,
                                           const at::Tensor& w_hh, const at::Tensor& gates, TensorArg<C>... cy,
                                           std::array<bool, 3> output_mask) {
    using namespace layer_ops_detail;
    const NoAutocast no_autocast;
    check_cell_backward_args(Cell, grad_hy, pointer_to(grad_cy...), input, hx, pointer_to(cx...), w_ih, w_hh, gates,
                             pointer_to(cy...));
    const LayerShape shape = one_step(input, w_hh);
    // With one step, h_n is the output: its gradient enters once, as grad_h_n. The output
    // argument is only read as the previous step's h, which one step never has.
    const at::Tensor no_output_grad = at::zeros({1, shape.B, shape.H}, input.options());
    LayerGrads grads = Backward(shape, no_output_grad, grad_hy, grad_cy..., input.unsqueeze(0), hx, cx..., w_ih, w_hh,
                                none<P>()..., false, /*output=*/hx.unsqueeze(0), gates,
                                cy.to(opmath_dtype(cy.scalar_type()))..., output_mask);
    if (output_mask[0]) std::get<0>(grads) = std::get<0>(grads).squeeze(0);
    return slice<0, kCellGrads>(grads);
  }

 private:
  static LayerShape one_step(const at::Tensor& input, const at::Tensor& w_hh) {
    return one_dense_step(input.size(0), input.size(1), w_hh.size(0) / Cell.gates);
  }
};

// A backend's kernels for a family's four ops, in a TORCH_LIBRARY_IMPL block for its dispatch key.
template <const CellTraits& Cell, auto Forward, auto Backward>
void register_layer_ops(torch::Library& m) {
  using Ops = LayerOps<Cell, Forward, Backward>;
  m.impl(Cell.layer, &Ops::layer);
  m.impl(Cell.layer_backward, &Ops::layer_backward);
  m.impl(Cell.cell, &Ops::cell);
  m.impl(Cell.cell_backward, &Ops::cell_backward);
}

}  // namespace lstm_ext
