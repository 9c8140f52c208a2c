// The LSTM's layer kernels, written once for its CPU and CUDA backends: the buffers of one call,
// the input projection before the time loop and the gradient GEMMs after it (the step
// bookkeeping, which step comes before which and which rows start from h0/c0, is
// runtime/layer_steps.h). All of it is plain ATen, so on CUDA it runs on the current stream
// without a sync. A backend adds only its time loops (cpu/lstm_layer.cpp, cuda/lstm_layer.cu),
// so both walk the same steps over the same rows.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <optional>

#include "runtime/cell_traits.h"
#include "runtime/input_projection.h"
#include "runtime/layer_checks.h"
#include "runtime/layer_steps.h"
#include "runtime/transposed_product.h"

namespace lstm_ext {

// lstm_layer's results: (output, h_n, c_n, gates, cells).
using LstmLayerResult = Tensors<5>;
// lstm_layer_backward's: (grad_input, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_bias, grad_w_hr);
// grad_bias serves both b_ih and b_hh. Masked-out gradients are empty tensors.
using LstmLayerGrads = Tensors<7>;

// Everything one forward call works in, allocated once; the time loop only takes views.
struct ForwardBuffers {
  at::Tensor w_hh, w_hr;        // contiguous recurrent and projection weights (w_hr undefined without)
  at::Tensor pre;               // [N, 4H] pre-activations, input projection already in; may be gates itself
  at::Tensor gates, cells;      // [N, 4H] activated gates and [N, H] cell states, saved for backward (opmath)
  at::Tensor output, out2d;     // [T, B, P] or [N, P], and its [N, P] view
  at::Tensor h_state, c_state;  // carried: [B, P] in the input's dtype, [B, H] in opmath

  LstmLayerResult result() const { return {output, h_state, c_state.to(output.scalar_type()), gates, cells}; }
};

// Allocates a forward call's buffers and runs the input projection for every step at once:
// pre = x @ w_ih^T + b_ih + b_hh, one GEMM with the bias folded in as its addend.
inline ForwardBuffers forward_buffers(const LayerShape& s, const at::Tensor& input, const at::Tensor& h0,
                                      const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                      const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                                      const std::optional<at::Tensor>& w_hr,
                                      InputProjection project = &aten_input_projection) {
  const at::ScalarType dtype = input.scalar_type();
  const at::ScalarType opmath = opmath_dtype(dtype);
  ForwardBuffers b;
  b.w_hh = w_hh.contiguous();
  if (w_hr.has_value()) b.w_hr = w_hr->contiguous();
  b.pre = project(as_rows(input.contiguous(), s.I), w_ih, b_ih, b_hh).contiguous();
  // The pre-activations become the saved gates in place when dtypes agree.
  b.gates = opmath == dtype ? b.pre : at::empty({s.N, 4 * s.H}, input.options().dtype(opmath));
  b.cells = at::empty({s.N, s.H}, input.options().dtype(opmath));
  const c10::DimVector out_sizes = s.packed ? c10::DimVector{s.N, s.P} : c10::DimVector{s.T, s.B, s.P};
  b.output = at::empty(out_sizes, input.options());
  b.out2d = b.output.view({s.N, s.P});
  b.h_state = h0.contiguous().clone();
  b.c_state = c0.to(opmath, /*non_blocking=*/false, /*copy=*/true).contiguous();
  return b;
}

// Everything one backward call works in. dh_state / dc_state start as the gradients of h_n /
// c_n and end as those of h0 / c0; dgates [N, 4H] collects the pre-activation gradients of
// every step; dh_all [N, P] and m_all [N, H] the projection's (undefined without one).
struct BackwardBuffers {
  at::Tensor w_ih, w_hh, w_hr;  // contiguous weights
  at::Tensor grad_out2d;        // [N, P]
  at::Tensor gates, cells, c0;  // contiguous saved tensors; c0 in opmath
  at::Tensor dh_state, dc_state, dgates, dh_all, m_all;
  // Whether the input's gradient is asked for; a backend's time loop may then compute it itself
  // into dx [N, I], and layer_gradients takes it from there.
  bool need_input_grad = false;
  at::Tensor dx;
};

inline BackwardBuffers backward_buffers(const LayerShape& s, const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                        const at::Tensor& grad_c_n, const at::Tensor& input, const at::Tensor& c0,
                                        const at::Tensor& w_ih, const at::Tensor& w_hh,
                                        const std::optional<at::Tensor>& w_hr, const at::Tensor& gates,
                                        const at::Tensor& cells) {
  const at::ScalarType opmath = opmath_dtype(input.scalar_type());
  BackwardBuffers b;
  b.w_ih = w_ih.contiguous();
  b.w_hh = w_hh.contiguous();
  if (w_hr.has_value()) b.w_hr = w_hr->contiguous();
  b.grad_out2d = as_rows(grad_output.contiguous(), s.P);
  b.gates = gates.contiguous();
  b.cells = cells.contiguous();
  b.c0 = c0.to(opmath).contiguous();
  b.dh_state = grad_h_n.contiguous().clone();
  b.dc_state = grad_c_n.to(opmath, /*non_blocking=*/false, /*copy=*/true).contiguous();
  b.dgates = at::empty({s.N, 4 * s.H}, input.options());
  if (s.has_proj) {
    b.dh_all = at::empty({s.N, s.P}, input.options());
    b.m_all = at::empty({s.N, s.H}, input.options());
  }
  return b;
}

// After the backward time loop: the gradients the mask asks for (input, h0/c0, weights), as a
// few large GEMMs over all steps at once. It frees the projection's buffers in b once used.
// project_input, where given, computes dx = dgates @ w_ih as rows @ (w_ih^T)^T (the CPU's packed GEMM).
inline LstmLayerGrads layer_gradients(const LayerShape& s, bool reverse, std::array<bool, 3> mask,
                                      const at::Tensor& input, const at::Tensor& h0, const at::Tensor& output,
                                      BackwardBuffers& b, InputProjection project_input = nullptr) {
  const auto [need_input, need_state, need_weights] = mask;
  const at::ScalarType dtype = input.scalar_type();
  // Masked-out gradients are distinct empty tensors: outputs of an op must not alias.
  const auto empty = [&] { return at::empty({0}, input.options()); };
  struct {
    at::Tensor input, h0, c0, w_ih, w_hh, bias, w_hr;
  } grads{empty(), empty(), empty(), empty(), empty(), empty(), empty()};
  if (s.has_proj) {
    // First, so the projection's buffers are freed before dx is allocated: off the peak.
    if (need_weights) grads.w_hr = transposed_product({{b.dh_all, b.m_all}});
    b.dh_all.reset();
    b.m_all.reset();
  }
  if (need_input) {
    const at::Tensor dx = b.dx.defined() ? b.dx
                          : project_input ? project_input(b.dgates, b.w_ih.t(), std::nullopt, std::nullopt)
                                          : at::mm(b.dgates, b.w_ih);
    grads.input = dx.view(input.sizes());
  }
  if (need_state) {
    grads.h0 = b.dh_state;
    grads.c0 = b.dc_state.to(dtype);
  }
  if (need_weights) {
    const at::Tensor x = as_rows(input.contiguous(), s.I);
    grads.w_ih = transposed_product({{b.dgates, x}});
    grads.w_hh = recurrent_weight_grad(s, reverse, b.dgates, as_rows(output.contiguous(), s.P), h0.contiguous());
    grads.bias = row_sum(b.dgates);
  }
  return {grads.input, grads.h0, grads.c0, grads.w_ih, grads.w_hh, grads.bias, grads.w_hr};
}

// For a backend without a current device.
struct NoDeviceGuard {
  explicit NoDeviceGuard(c10::Device) {}
};

// The two kernels of an LSTM backend, for runtime/layer_ops.h, which checks the arguments first.
// The backend provides:
//   DeviceGuard            constructed from the input's device and held for the whole call
//   forward_projection     the input projection before the forward loop
//   input_grad_projection  dx = dgates @ w_ih, as rows @ (w_ih^T)^T; null: at::mm
//   forward(s, reverse, b)                    the forward time loop over ForwardBuffers b
//   backward(s, reverse, b, need_state_grad)  the backward time loop over BackwardBuffers b
template <typename Backend>
LstmLayerResult layer_forward(const LayerShape& s, const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0,
                              const at::Tensor& w_ih, const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                              const std::optional<at::Tensor>& b_hh, const std::optional<at::Tensor>& w_hr,
                              bool reverse) {
  const typename Backend::DeviceGuard device_guard(input.device());
  ForwardBuffers b = forward_buffers(s, input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, Backend::forward_projection);
  Backend::forward(s, reverse, b);
  return b.result();
}

template <typename Backend>
LstmLayerGrads layer_backward(const LayerShape& s, const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                              const at::Tensor& grad_c_n, const at::Tensor& input, const at::Tensor& h0,
                              const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                              const std::optional<at::Tensor>& w_hr, bool reverse, const at::Tensor& output,
                              const at::Tensor& gates, const at::Tensor& cells, std::array<bool, 3> mask) {
  const typename Backend::DeviceGuard device_guard(input.device());
  BackwardBuffers b = backward_buffers(s, grad_output, grad_h_n, grad_c_n, input, c0, w_ih, w_hh, w_hr, gates, cells);
  b.need_input_grad = mask[0];
  Backend::backward(s, reverse, b, /*need_state_grad=*/mask[1]);
  return layer_gradients(s, reverse, mask, input, h0, output, b, Backend::input_grad_projection);
}

}  // namespace lstm_ext
