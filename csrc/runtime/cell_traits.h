// What the shared runtime knows of a cell family: the shape of its four ops (runtime/layer_ops.h
// registers them, runtime/layer_checks.h checks their arguments), and the tuple type of their
// results. Each family fills one CellTraits (lstm/lstm_cell.h, gru/gru_cell.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>
#include <utility>

namespace lstm_ext {

// Shapes below: H the hidden size, P the output size (proj_size, or H), B the batch, I the
// input size, N the rows of a sequence (T * B when dense), G = gates.
struct CellTraits {
  // Gate blocks stacked in w_ih [G*H, I], w_hh [G*H, P] and the biases b_ih, b_hh [G*H].
  int64_t gates;
  // Blocks of the gates the forward saves for backward: [N, saved_gates*H], op-math dtype.
  int64_t saved_gates;
  // Whether the cell carries c [B, H] beside h [B, P]. With it every op takes c right after h
  // (c0 after h0, grad_c_n after grad_h_n, cx after hx, grad_cy after grad_hy), the layer op
  // returns c_n after h_n and saves cells [N, H] (c of every row) after gates, and the cell op
  // returns cy after hy and its backward takes cy back after gates.
  bool cell_state;
  // Whether the layer ops take a projection w_hr [P, H] (after b_hh; in backward after w_hh) and
  // the layer backward returns grad_w_hr last. The cell ops never take one.
  bool projection;
  // The ops' qualified names ("lstm_ext::<op>"), for the registration and the checks' messages.
  const char* layer;
  const char* layer_backward;
  const char* cell;
  const char* cell_backward;
};

// T, once per index I, to expand a pack of indices into as many Ts. Through a class template,
// not a plain alias of T, which nvcc's front end resolves before the pack is expanded.
template <size_t I, typename T>
struct Indexed {
  using type = T;
};

template <size_t I>
using TensorAt = typename Indexed<I, at::Tensor>::type;

template <typename Indices>
struct TensorTuple;

template <size_t... I>
struct TensorTuple<std::index_sequence<I...>> {
  using type = std::tuple<TensorAt<I>...>;
};

// N tensors: the type the dispatcher takes for an op that returns N tensors.
template <size_t N>
using Tensors = typename TensorTuple<std::make_index_sequence<N>>::type;

}  // namespace lstm_ext
