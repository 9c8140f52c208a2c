// The layer shape and the argument-check building blocks of every op family. A direct
// torch.ops.lstm_ext.* call with bad shapes, dtypes or devices must raise here, before any kernel
// touches a pointer: the building blocks, and from them the checks of every family's four ops.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/DimVector.h>

#include <optional>
#include <vector>

#include "runtime/cell_traits.h"

namespace lstm_ext {

// The sizes of one layer-direction call, and the row range of every step.
// Dense input is treated as packed input whose steps all have B rows.
struct LayerShape {
  int64_t T = 0;  // steps
  int64_t B = 0;  // batch (rows of h0 / c0)
  int64_t I = 0;  // input features
  int64_t H = 0;  // hidden size
  int64_t P = 0;  // output features: proj_size, or H without a projection
  int64_t N = 0;  // rows of input and output: T * B when dense
  bool packed = false;
  bool has_proj = false;
  std::vector<int64_t> rows;    // rows[t]: how many sequences are active at step t
  std::vector<int64_t> offset;  // offset[t]: the first row of step t in input / output
};

// The dtype in which gates and cell states are kept: float for reduced precision.
at::ScalarType opmath_dtype(at::ScalarType dtype);

// The building blocks of the checks (below, and the variants' in lstm_variants/cpu/).
// Each raises with `op` and the argument's name in the message.
void check_shape(const at::Tensor& t, c10::IntArrayRef expected, const char* name, const char* op);
// t has input's dtype and device.
void check_like(const at::Tensor& t, const at::Tensor& input, const char* name, const char* op);
// A tensor saved for backward: shape `expected`, input's op-math dtype and device.
void check_saved(const at::Tensor& t, c10::IntArrayRef expected, const at::Tensor& input, const char* name,
                 const char* op);
void check_floating(const at::Tensor& input, const char* op);
// Weights w_ih [G*H, I], w_hh [G*H, P], biases [G*H], w_hr [P, H] with G = num_gates; fills H, P.
void check_weights(LayerShape& s, const at::Tensor& input, const at::Tensor& w_ih, const at::Tensor& w_hh,
                   const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                   const std::optional<at::Tensor>& w_hr, const char* op, int64_t num_gates);
// Fills T, B, N, rows and offset from the input's layout (dense [T, B, I] or packed [N, I]),
// h0's batch and batch_sizes.
void check_steps(LayerShape& s, const at::Tensor& input, const at::Tensor& h0,
                 const std::optional<at::Tensor>& batch_sizes, const char* op);
// [N, P] when packed, [T, B, P] when dense.
c10::DimVector output_sizes(const LayerShape& s);

// One dense step of B rows: how a cell op runs the layer kernel.
LayerShape one_dense_step(int64_t B, int64_t I, int64_t H);

// The checks of the four ops of a cell family (runtime/layer_ops.h); see CellTraits for the
// shapes. A cell without c passes null for c0, grad_c_n and cells (cx, grad_cy and cy).

// One layer-direction's forward arguments, `gates` blocks per weight; `op` names the op in the
// messages. input [T, B, I] (dense) or [N, I] with batch_sizes; h0 [B, P]; c0 [B, H].
LayerShape check_layer_args(const char* op, int64_t gates, const at::Tensor& input, const at::Tensor& h0,
                            const at::Tensor* c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                            const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                            const std::optional<at::Tensor>& w_hr, const std::optional<at::Tensor>& batch_sizes);

// The forward's arguments (no biases), output and grad_output like the forward's output,
// grad_h_n [B, P], grad_c_n [B, H], and the saved gates and cells.
LayerShape check_layer_backward_args(const CellTraits& cell, const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                     const at::Tensor* grad_c_n, const at::Tensor& input, const at::Tensor& h0,
                                     const at::Tensor* c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                     const std::optional<at::Tensor>& w_hr,
                                     const std::optional<at::Tensor>& batch_sizes, const at::Tensor& output,
                                     const at::Tensor& gates, const at::Tensor* cells);

// One step of the cell op (`op`: the cell op or its backward): input [B, I], hx and cx [B, H].
void check_cell_args(const CellTraits& cell, const char* op, const at::Tensor& input, const at::Tensor& hx,
                     const at::Tensor* cx, const at::Tensor& w_ih, const at::Tensor& w_hh,
                     const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh);

// The cell's arguments (no biases), grad_hy and grad_cy [B, H], and gates [B, saved_gates*H]
// and cy [B, H] as the cell op returned them.
void check_cell_backward_args(const CellTraits& cell, const at::Tensor& grad_hy, const at::Tensor* grad_cy,
                              const at::Tensor& input, const at::Tensor& hx, const at::Tensor* cx,
                              const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& gates,
                              const at::Tensor* cy);

}  // namespace lstm_ext
