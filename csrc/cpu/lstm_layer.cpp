// One LSTM layer-direction over a whole (dense or packed) sequence, on the CPU.
//
// Forward:  one GEMM projects every step's input (bias folded in); then per step one
//           recurrent GEMM and one fused pointwise pass of gates.h.
// Backward: per step one fused pointwise pass and one recurrent GEMM; after the loop the
//           input and weight gradients as a few large GEMMs over all steps at once.
// Buffers are allocated once per call; the time loop only takes views of them.
#include "cpu/lstm_layer.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "cpu/pointwise.h"
#include "cpu/recurrent_gemm.h"
#include "layer_steps.h"

namespace lstm_ext {
namespace cpu {
namespace {

using at::Tensor;

template <typename scalar_t>
void forward_loop(const LayerShape& s, bool reverse, Tensor& pre, Tensor& gates, Tensor& cells, Tensor& out2d,
                  Tensor& h_state, Tensor& c_state, const Tensor& w_hh, const Tensor& w_hr) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, P = s.P;
  const RecurrentGemm recurrent(w_hh, s.B);
  const ForwardRows<scalar_t> rows = forward_rows<scalar_t>();
  Tensor m_state;  // o * tanh(c) before the projection
  if (s.has_proj) m_state = at::empty({s.B, H}, pre.options());
  const std::optional<RecurrentGemm> projection =
      s.has_proj ? std::optional<RecurrentGemm>(std::in_place, w_hr, s.B) : std::nullopt;

  for (int64_t k = 0; k < s.T; ++k) {
    const int64_t t = reverse ? s.T - 1 - k : k;
    const int64_t n = s.rows[t], off = s.offset[t];
    if (n == 0) continue;
    const Tensor pre_t = recurrent.accumulate(h_state.narrow(0, 0, n), pre.narrow(0, off, n));

    const ForwardStep<scalar_t> step{
        H,
        pre_t.const_data_ptr<scalar_t>(),
        gates.data_ptr<opmath_t>() + off * 4 * H,
        cells.data_ptr<opmath_t>() + off * H,
        c_state.data_ptr<opmath_t>(),
        s.has_proj ? m_state.data_ptr<scalar_t>() : h_state.data_ptr<scalar_t>(),
        s.has_proj ? nullptr : out2d.data_ptr<scalar_t>() + off * P,
    };
    at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(step, begin, end); });

    if (s.has_proj) {
      Tensor out_t = out2d.narrow(0, off, n);
      projection->write(m_state.narrow(0, 0, n), out_t);
      h_state.narrow(0, 0, n).copy_(out_t);
    }
  }
}

template <typename scalar_t>
void backward_loop(const LayerShape& s, bool reverse, const Tensor& grad_out2d, Tensor& dh_state,
                   Tensor& dc_state, Tensor& dgates, Tensor& dh_all, Tensor& m_all, const Tensor& gates,
                   const Tensor& cells, const Tensor& c0, const Tensor& w_hh, const Tensor& w_hr,
                   bool need_state_grad) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, P = s.P;
  const BackwardRows<scalar_t> rows = backward_rows<scalar_t>();
  const RecurrentGemm recurrent(w_hh.t(), s.B);  // dh_{t-1} = dgates_t @ w_hh
  const std::optional<RecurrentGemm> projection =  // dm_t = dh_t @ w_hr
      s.has_proj ? std::optional<RecurrentGemm>(std::in_place, w_hr.t(), s.B) : std::nullopt;
  Tensor dm_state;  // gradient reaching o * tanh(c), through the projection
  if (s.has_proj) dm_state = at::empty({s.B, H}, dgates.options());

  for (int64_t k = s.T - 1; k >= 0; --k) {
    const int64_t t = reverse ? s.T - 1 - k : k;
    const int64_t n = s.rows[t], off = s.offset[t];
    if (n == 0) continue;
    const int64_t prev = previous_step(t, s.T, reverse);
    const int64_t n_prev = rows_with_previous(s, t, prev);

    const scalar_t* dy_p = grad_out2d.const_data_ptr<scalar_t>() + off * P;
    scalar_t* dh_p = dh_state.data_ptr<scalar_t>();
    if (s.has_proj) {
      // The whole gradient of h_t is needed before the projection's GEMM.
      scalar_t* dh_all_p = dh_all.data_ptr<scalar_t>() + off * P;
      for (int64_t i = 0; i < n * P; ++i) {
        dh_all_p[i] = static_cast<scalar_t>(static_cast<opmath_t>(dh_p[i]) + static_cast<opmath_t>(dy_p[i]));
      }
      Tensor dm_t = dm_state.narrow(0, 0, n);
      projection->write(dh_all.narrow(0, off, n), dm_t);
    }

    const BackwardStep<scalar_t> step{
        H,
        gates.const_data_ptr<opmath_t>() + off * 4 * H,
        cells.const_data_ptr<opmath_t>() + off * H,
        prev < 0 ? nullptr : cells.const_data_ptr<opmath_t>() + s.offset[prev] * H,
        c0.const_data_ptr<opmath_t>(),
        n_prev,
        s.has_proj ? dm_state.const_data_ptr<scalar_t>() : dh_p,
        s.has_proj ? nullptr : dy_p,
        dc_state.data_ptr<opmath_t>(),
        dgates.data_ptr<scalar_t>() + off * 4 * H,
        s.has_proj ? m_all.data_ptr<scalar_t>() + off * H : nullptr,
    };
    at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(step, begin, end); });

    // The last step walked needs no gradient for h0 unless one was asked for.
    if (k > 0 || need_state_grad) {
      Tensor dh_t = dh_state.narrow(0, 0, n);
      recurrent.write(dgates.narrow(0, off, n), dh_t);
    }
  }
}

Tensor as_rows(const Tensor& t, int64_t cols) {
  return t.reshape({-1, cols});
}

}  // namespace

LayerForward layer_forward(const LayerShape& s, const Tensor& input, const Tensor& h0, const Tensor& c0,
                           const Tensor& w_ih, const Tensor& w_hh, const std::optional<Tensor>& b_ih,
                           const std::optional<Tensor>& b_hh, const std::optional<Tensor>& w_hr, bool reverse) {
  const at::ScalarType dtype = input.scalar_type();
  const at::ScalarType opmath = opmath_dtype(dtype);
  const Tensor x = as_rows(input.contiguous(), s.I);
  const Tensor w_ih_c = w_ih.contiguous(), w_hh_c = w_hh.contiguous();
  const Tensor w_hr_c = w_hr.has_value() ? w_hr->contiguous() : Tensor();

  Tensor gates = at::empty({s.N, 4 * s.H}, input.options().dtype(opmath));
  // The pre-activations are computed in place in the saved gates buffer when dtypes agree.
  Tensor pre = opmath == dtype ? gates : at::empty({s.N, 4 * s.H}, input.options());
  if (b_ih.has_value() || b_hh.has_value()) {
    Tensor bias = b_ih.has_value() ? *b_ih : *b_hh;
    if (b_ih.has_value() && b_hh.has_value()) bias = *b_ih + *b_hh;
    at::addmm_out(pre, bias, x, w_ih_c.t());
  } else {
    at::mm_out(pre, x, w_ih_c.t());
  }

  Tensor cells = at::empty({s.N, s.H}, input.options().dtype(opmath));
  const c10::DimVector out_sizes = s.packed ? c10::DimVector{s.N, s.P} : c10::DimVector{s.T, s.B, s.P};
  Tensor output = at::empty(out_sizes, input.options());
  Tensor out2d = output.view({s.N, s.P});
  Tensor h_state = h0.contiguous().clone();
  Tensor c_state = c0.to(opmath, /*non_blocking=*/false, /*copy=*/true).contiguous();

  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, dtype, "lstm_ext_layer_forward", [&] {
    forward_loop<scalar_t>(s, reverse, pre, gates, cells, out2d, h_state, c_state, w_hh_c, w_hr_c);
  });
  return {output, h_state, c_state.to(dtype), gates, cells};
}

LayerBackward layer_backward(const LayerShape& s, const Tensor& grad_output, const Tensor& grad_h_n,
                             const Tensor& grad_c_n, const Tensor& input, const Tensor& h0, const Tensor& c0,
                             const Tensor& w_ih, const Tensor& w_hh, const std::optional<Tensor>& w_hr,
                             bool reverse, const Tensor& output, const Tensor& gates, const Tensor& cells,
                             std::array<bool, 3> mask) {
  const auto [need_input, need_state, need_weights] = mask;
  const at::ScalarType dtype = input.scalar_type();
  const at::ScalarType opmath = opmath_dtype(dtype);
  const Tensor w_ih_c = w_ih.contiguous(), w_hh_c = w_hh.contiguous();
  const Tensor w_hr_c = w_hr.has_value() ? w_hr->contiguous() : Tensor();
  const Tensor grad_out2d = as_rows(grad_output.contiguous(), s.P);
  const Tensor gates_c = gates.contiguous(), cells_c = cells.contiguous();
  const Tensor c0_op = c0.to(opmath).contiguous();

  Tensor dh_state = grad_h_n.contiguous().clone();
  Tensor dc_state = grad_c_n.to(opmath, /*non_blocking=*/false, /*copy=*/true).contiguous();
  Tensor dgates = at::empty({s.N, 4 * s.H}, input.options());
  const bool proj_grads = s.has_proj;
  Tensor dh_all = proj_grads ? at::empty({s.N, s.P}, input.options()) : Tensor();
  Tensor m_all = proj_grads ? at::empty({s.N, s.H}, input.options()) : Tensor();

  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, dtype, "lstm_ext_layer_backward", [&] {
    backward_loop<scalar_t>(s, reverse, grad_out2d, dh_state, dc_state, dgates, dh_all, m_all, gates_c, cells_c,
                            c0_op, w_hh_c, w_hr_c, need_state);
  });

  // Masked-out gradients are distinct empty tensors: outputs of an op must not alias.
  const auto empty = [&] { return at::empty({0}, input.options()); };
  LayerBackward grads{empty(), empty(), empty(), empty(), empty(), empty(), empty()};
  if (need_input) {
    grads.input = at::mm(dgates, w_ih_c).view(input.sizes());
  }
  if (need_state) {
    grads.h0 = dh_state;
    grads.c0 = dc_state.to(dtype);
  }
  if (need_weights) {
    const Tensor x = as_rows(input.contiguous(), s.I);
    grads.w_ih = at::mm(dgates.t(), x);
    grads.w_hh = at::mm(dgates.t(), previous_hidden(s, reverse, as_rows(output.contiguous(), s.P), h0.contiguous()));
    grads.bias = dgates.sum(0, /*keepdim=*/false, opmath).to(dtype);
    if (s.has_proj) grads.w_hr = at::mm(dh_all.t(), m_all);
  }
  return grads;
}

}  // namespace cpu
}  // namespace lstm_ext
