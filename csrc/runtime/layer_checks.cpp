#include "runtime/layer_checks.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace lstm_ext {

// The building blocks of every family's argument checks.

void check_shape(const at::Tensor& t, c10::IntArrayRef expected, const char* name, const char* op) {
  TORCH_CHECK(t.sizes() == expected, op, ": expected ", name, " of shape ", expected, ", got ", t.sizes());
}

void check_like(const at::Tensor& t, const at::Tensor& input, const char* name, const char* op) {
  TORCH_CHECK(t.scalar_type() == input.scalar_type(), op, ": expected ", name, " to have dtype ",
              input.scalar_type(), " like input, got ", t.scalar_type());
  TORCH_CHECK(t.device() == input.device(), op, ": expected ", name, " on device ", input.device(),
              " like input, got ", t.device());
}

void check_saved(const at::Tensor& t, c10::IntArrayRef expected, const at::Tensor& input, const char* name,
                 const char* op) {
  check_shape(t, expected, name, op);
  TORCH_CHECK(t.scalar_type() == opmath_dtype(input.scalar_type()), op, ": expected ", name, " of dtype ",
              opmath_dtype(input.scalar_type()), ", got ", t.scalar_type());
  TORCH_CHECK(t.device() == input.device(), op, ": expected ", name, " on device ", input.device(), ", got ",
              t.device());
}

void check_floating(const at::Tensor& input, const char* op) {
  TORCH_CHECK(at::isFloatingType(input.scalar_type()), op, ": expected a floating-point input, got ",
              input.scalar_type());
}

// Weights and biases: w_ih [G*H, I], w_hh [G*H, P], b [G*H], w_hr [P, H], G = num_gates (4 for
// the LSTM, 3 for the GRU). Fills H and P.
void check_weights(LayerShape& s, const at::Tensor& input, const at::Tensor& w_ih, const at::Tensor& w_hh,
                   const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                   const std::optional<at::Tensor>& w_hr, const char* op, int64_t num_gates) {
  TORCH_CHECK(w_hh.dim() == 2, op, ": expected w_hh to be 2-D [", num_gates,
              "*hidden_size, proj_size or hidden_size], got ", w_hh.dim(), "-D");
  TORCH_CHECK(w_hh.size(0) > 0 && w_hh.size(0) % num_gates == 0, op, ": expected w_hh.size(0) to be a positive multiple of ",
              num_gates, " (", num_gates, "*hidden_size), got ", w_hh.size(0));
  s.H = w_hh.size(0) / num_gates;
  s.has_proj = w_hr.has_value();
  if (s.has_proj) {
    TORCH_CHECK(w_hr->dim() == 2 && w_hr->size(1) == s.H && w_hr->size(0) > 0, op,
                ": expected w_hr of shape [proj_size, ", s.H, "], got ", w_hr->sizes());
    s.P = w_hr->size(0);
    check_like(*w_hr, input, "w_hr", op);
  } else {
    s.P = s.H;
  }
  check_shape(w_hh, {num_gates * s.H, s.P}, "w_hh", op);
  check_shape(w_ih, {num_gates * s.H, s.I}, "w_ih", op);
  check_like(w_ih, input, "w_ih", op);
  check_like(w_hh, input, "w_hh", op);
  if (b_ih.has_value()) {
    check_shape(*b_ih, {num_gates * s.H}, "b_ih", op);
    check_like(*b_ih, input, "b_ih", op);
  }
  if (b_hh.has_value()) {
    check_shape(*b_hh, {num_gates * s.H}, "b_hh", op);
    check_like(*b_hh, input, "b_hh", op);
  }
}

// Fills T, B, N, rows and offset from the input's layout and batch_sizes.
void check_steps(LayerShape& s, const at::Tensor& input, const at::Tensor& h0,
                 const std::optional<at::Tensor>& batch_sizes, const char* op) {
  s.packed = batch_sizes.has_value();
  TORCH_CHECK(h0.dim() == 2, op, ": expected h0 to be 2-D [batch, proj_size or hidden_size], got ", h0.dim(), "-D");
  s.B = h0.size(0);
  if (!s.packed) {
    TORCH_CHECK(input.dim() == 3, op, ": expected a 3-D input [T, B, input_size] when batch_sizes is None, got ",
                input.dim(), "-D");
    TORCH_CHECK(input.size(1) == s.B, op, ": input has batch ", input.size(1), " but h0 has batch ", s.B);
    s.T = input.size(0);
    s.I = input.size(2);
    s.N = s.T * s.B;
    s.rows.assign(s.T, s.B);
    s.offset.resize(s.T);
    for (int64_t t = 0; t < s.T; ++t) s.offset[t] = t * s.B;
    return;
  }
  const at::Tensor& bs = *batch_sizes;
  TORCH_CHECK(input.dim() == 2, op, ": expected packed input [sum(lengths), input_size] with batch_sizes, got ",
              input.dim(), "-D");
  TORCH_CHECK(bs.dim() == 1, op, ": expected batch_sizes to be 1-D, got ", bs.dim(), "-D");
  TORCH_CHECK(bs.scalar_type() == at::kLong, op, ": expected batch_sizes of dtype int64, got ", bs.scalar_type());
  TORCH_CHECK(bs.device().is_cpu(), op, ": expected batch_sizes on the CPU (as PackedSequence keeps it), got ",
              bs.device());
  s.T = bs.size(0);
  s.I = input.size(1);
  s.N = input.size(0);
  const at::Tensor sizes = bs.contiguous();
  const int64_t* data = sizes.data_ptr<int64_t>();
  s.rows.assign(data, data + s.T);
  s.offset.resize(s.T);
  int64_t total = 0;
  for (int64_t t = 0; t < s.T; ++t) {
    const int64_t n = s.rows[t];
    TORCH_CHECK(n >= 1, op, ": batch_sizes[", t, "] = ", n, "; every step needs at least one sequence");
    TORCH_CHECK(n <= s.B, op, ": batch_sizes[", t, "] = ", n, " exceeds the batch of h0 (", s.B, ")");
    TORCH_CHECK(t == 0 || n <= s.rows[t - 1], op, ": batch_sizes must be non-increasing (sorted by length), ",
                "but batch_sizes[", t, "] = ", n, " > batch_sizes[", t - 1, "] = ", s.rows[t - 1]);
    s.offset[t] = total;
    total += n;
  }
  TORCH_CHECK(total == s.N, op, ": batch_sizes sum to ", total, " but the packed input has ", s.N, " rows");
  TORCH_CHECK(s.T == 0 || s.rows[0] == s.B, op, ": batch_sizes[0] = ", (s.T ? s.rows[0] : 0),
              " must equal the batch of h0 (", s.B, ")");
}

c10::DimVector output_sizes(const LayerShape& s) {
  if (s.packed) return {s.N, s.P};
  return {s.T, s.B, s.P};
}

LayerShape one_dense_step(int64_t B, int64_t I, int64_t H) {
  LayerShape s;
  s.T = 1;
  s.B = s.N = B;
  s.I = I;
  s.H = s.P = H;
  s.rows = {B};
  s.offset = {0};
  return s;
}

// ---- the four ops of a cell family ----
// Without c the same checks run in the same order, so the first failing one is the one reported.

LayerShape check_layer_args(const char* op, int64_t gates, const at::Tensor& input, const at::Tensor& h0,
                            const at::Tensor* c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                            const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                            const std::optional<at::Tensor>& w_hr, const std::optional<at::Tensor>& batch_sizes) {
  check_floating(input, op);
  LayerShape s;
  check_steps(s, input, h0, batch_sizes, op);
  check_weights(s, input, w_ih, w_hh, b_ih, b_hh, w_hr, op, gates);
  check_shape(h0, {s.B, s.P}, "h0", op);
  if (c0) check_shape(*c0, {s.B, s.H}, "c0", op);
  check_like(h0, input, "h0", op);
  if (c0) check_like(*c0, input, "c0", op);
  return s;
}

LayerShape check_layer_backward_args(const CellTraits& cell, const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                     const at::Tensor* grad_c_n, const at::Tensor& input, const at::Tensor& h0,
                                     const at::Tensor* c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                     const std::optional<at::Tensor>& w_hr,
                                     const std::optional<at::Tensor>& batch_sizes, const at::Tensor& output,
                                     const at::Tensor& gates, const at::Tensor* cells) {
  const char* op = cell.layer_backward;
  LayerShape s =
      check_layer_args(op, cell.gates, input, h0, c0, w_ih, w_hh, std::nullopt, std::nullopt, w_hr, batch_sizes);
  const c10::DimVector out_sizes = output_sizes(s);
  check_shape(output, out_sizes, "output", op);
  check_shape(grad_output, out_sizes, "grad_output", op);
  check_shape(grad_h_n, {s.B, s.P}, "grad_h_n", op);
  if (grad_c_n) check_shape(*grad_c_n, {s.B, s.H}, "grad_c_n", op);
  check_like(output, input, "output", op);
  check_like(grad_output, input, "grad_output", op);
  check_like(grad_h_n, input, "grad_h_n", op);
  if (grad_c_n) check_like(*grad_c_n, input, "grad_c_n", op);
  check_saved(gates, {s.N, cell.saved_gates * s.H}, input, "gates", op);
  if (cells) check_saved(*cells, {s.N, s.H}, input, "cells", op);
  return s;
}

void check_cell_args(const CellTraits& cell, const char* op, const at::Tensor& input, const at::Tensor& hx,
                     const at::Tensor* cx, const at::Tensor& w_ih, const at::Tensor& w_hh,
                     const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh) {
  check_floating(input, op);
  TORCH_CHECK(input.dim() == 2, op, ": expected input of shape [batch, input_size], got ", input.dim(), "-D");
  LayerShape s;
  s.B = input.size(0);
  s.I = input.size(1);
  check_weights(s, input, w_ih, w_hh, b_ih, b_hh, std::nullopt, op, cell.gates);
  check_shape(hx, {s.B, s.H}, "hx", op);
  if (cx) check_shape(*cx, {s.B, s.H}, "cx", op);
  check_like(hx, input, "hx", op);
  if (cx) check_like(*cx, input, "cx", op);
}

void check_cell_backward_args(const CellTraits& cell, const at::Tensor& grad_hy, const at::Tensor* grad_cy,
                              const at::Tensor& input, const at::Tensor& hx, const at::Tensor* cx,
                              const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& gates,
                              const at::Tensor* cy) {
  const char* op = cell.cell_backward;
  check_cell_args(cell, op, input, hx, cx, w_ih, w_hh, std::nullopt, std::nullopt);
  const int64_t B = input.size(0), H = w_hh.size(0) / cell.gates;
  check_shape(grad_hy, {B, H}, "grad_hy", op);
  if (grad_cy) check_shape(*grad_cy, {B, H}, "grad_cy", op);
  if (cy) check_shape(*cy, {B, H}, "cy", op);
  check_like(grad_hy, input, "grad_hy", op);
  if (grad_cy) check_like(*grad_cy, input, "grad_cy", op);
  if (cy) check_like(*cy, input, "cy", op);
  check_saved(gates, {B, cell.saved_gates * H}, input, "gates", op);
}

at::ScalarType opmath_dtype(at::ScalarType dtype) {
  return (dtype == at::kBFloat16 || dtype == at::kHalf) ? at::kFloat : dtype;
}

}  // namespace lstm_ext
