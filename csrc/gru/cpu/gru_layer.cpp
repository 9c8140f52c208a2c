// One GRU layer-direction over a whole (dense or packed) sequence, on the CPU. The same loop as
// lstm_layer.cpp, with the GRU's one difference: the candidate needs the recurrent projection
// of its block apart from the input's (r * (h W_hn + b_hn)), so each step's recurrent GEMM
// writes a scratch buffer instead of accumulating into the input projection.
//
// Forward:  one GEMM projects every step's input (b_ih, b_hr and b_hz folded in); then per step
//           one recurrent GEMM and one fused pointwise pass of gru_gates.h.
// Backward: per step one fused pointwise pass and one recurrent GEMM; after the loop the input
//           and weight gradients as a few large GEMMs over all steps at once.
// Buffers are allocated once per call; the time loop only takes views of them. The memory h is
// carried in op-math precision (float for bfloat16), like the LSTM's cell state.
// With several threads and big enough steps the backward loop runs as a team, as the LSTM's does.
#include "gru/cpu/gru_layer.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "gru/cpu/fused_gru_layer.h"
#include "gru/cpu/gru_pointwise.h"
#include "runtime/cpu/grain.h"
#include "runtime/cpu/gemm/recurrent_gemm.h"
#include "runtime/cpu/team_walks.h"
#include "runtime/input_projection.h"
#include "runtime/layer_steps.h"
#include "runtime/transposed_product.h"

namespace lstm_ext {
namespace cpu {
namespace {

using at::Tensor;

template <typename T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

template <typename scalar_t>
void forward_loop(const LayerShape& s, bool reverse, const Tensor& x_pre, Tensor& h_pre, const Tensor& b_hn,
                  Tensor& gates, Tensor& out2d, Tensor& h_state, Tensor& h_copy, const Tensor& w_hh) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H;
  const RecurrentGemm recurrent(w_hh, s.B, s.T);
  const auto rows = gru_row_kernels<scalar_t>().forward;
  // The GEMM's operand: the carried state itself, or its copy in the storage dtype (bfloat16).
  const Tensor& h_gemm = h_copy.defined() ? h_copy : h_state;

  walk_forward(s, reverse, [&](int64_t, int64_t, int64_t n, int64_t off) {
    const scalar_t* h_pre_p = h_pre.const_data_ptr<scalar_t>();
    Tensor h_pre_t;  // the tensor path's result, where the small step does not apply
    if (!recurrent.small_step(h_gemm.const_data_ptr<scalar_t>(), h_gemm.stride(0), n, h_pre.data_ptr<scalar_t>(),
                              3 * H, false)) {
      h_pre_t = recurrent.product(h_gemm.narrow(0, 0, n), h_pre.narrow(0, 0, n)).contiguous();
      h_pre_p = h_pre_t.const_data_ptr<scalar_t>();
    }

    const GruForwardStep<scalar_t> step{
        H,
        x_pre.const_data_ptr<scalar_t>() + off * 3 * H,
        h_pre_p,
        b_hn.defined() ? b_hn.const_data_ptr<scalar_t>() : nullptr,
        gates.data_ptr<opmath_t>() + off * 4 * H,
        h_state.data_ptr<opmath_t>(),
        data_or_null<scalar_t>(h_copy),
        out2d.data_ptr<scalar_t>() + off * H,
    };
    at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(step, begin, end); });
  });
}

// The backward buffers: d_x [N, 3H] and d_hn [N, H] for the weight gradients, and the step's
// gradient of h W_hh + b_hh, the recurrent GEMM's operand, in steps [2, B, 3H]: its r and z
// blocks are d_x's, so only the n block is kept for every row. A team member may start a step's
// gate math while another still runs the GEMM of the step after it, hence two, used in turn
// (steps with rows are consecutive: packed batch sizes only shrink).
struct GruGrads {
  Tensor dh_state, d_x, d_hn, steps;
};

template <typename scalar_t>
GruBackwardStep<scalar_t> backward_step(const LayerShape& s, bool reverse, int64_t t, const Tensor& out2d,
                                        const Tensor& h0, const Tensor& gates, const Tensor& grad_out2d, GruGrads& g) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, off = s.offset[t];
  const int64_t prev = previous_step(t, s.T, reverse);
  return GruBackwardStep<scalar_t>{
      H,
      gates.const_data_ptr<opmath_t>() + off * 4 * H,
      prev < 0 ? nullptr : out2d.const_data_ptr<scalar_t>() + s.offset[prev] * H,
      h0.const_data_ptr<scalar_t>(),
      rows_with_previous(s, t, prev),
      grad_out2d.const_data_ptr<scalar_t>() + off * H,
      g.dh_state.data_ptr<scalar_t>(),
      g.d_x.data_ptr<scalar_t>() + off * 3 * H,
      g.steps.data_ptr<scalar_t>() + (t % 2) * s.B * 3 * H,
      g.d_hn.data_ptr<scalar_t>() + off * H,
  };
}

template <typename scalar_t>
void backward_loop(const LayerShape& s, bool reverse, const Tensor& grad_out2d, const Tensor& out2d,
                   const Tensor& h0, const Tensor& gates, GruGrads& g, const Tensor& w_hh, bool need_state_grad) {
  const int64_t H = s.H;
  const auto rows = gru_row_kernels<scalar_t>().backward;
  const RecurrentGemm recurrent(w_hh.t(), s.B, s.T);  // dh_{t-1} += d_h_t @ w_hh

  walk_backward(s, reverse, [&](int64_t k, int64_t t, int64_t n, int64_t) {
    const GruBackwardStep<scalar_t> step = backward_step<scalar_t>(s, reverse, t, out2d, h0, gates, grad_out2d, g);
    at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(step, begin, end); });

    // The last step walked needs no gradient for h0 unless one was asked for.
    if ((k > 0 || need_state_grad) &&
        !recurrent.small_step(step.d_h, 3 * H, n, g.dh_state.data_ptr<scalar_t>(), g.dh_state.stride(0), true)) {
      Tensor dh_t = g.dh_state.narrow(0, 0, n);
      const Tensor sum = recurrent.accumulate(g.steps[t % 2].narrow(0, 0, n), dh_t);
      if (!sum.is_same(dh_t)) dh_t.copy_(sum);
    }
  });
}

// Backward as a team: the gate math leaves the direct part of dh_{t-1} in dh_state, and the walk
// adds d_h_t @ w_hh to it.
template <typename scalar_t>
void backward_team(const LayerShape& s, bool reverse, const Tensor& grad_out2d, const Tensor& out2d,
                   const Tensor& h0, const Tensor& gates, GruGrads& g, const Tensor& w_hh, bool need_state_grad) {
  const auto rows = gru_row_kernels<scalar_t>().backward;
  team_backward_walk_rows(
      s, reverse, w_hh, [&](int64_t t, int64_t, int64_t n) { return g.steps[t % 2].narrow(0, 0, n); }, g.dh_state,
      /*accumulate=*/true, need_state_grad, [&](int64_t t, int64_t n, int64_t, int64_t u0, int64_t u1) {
        GruBackwardStep<scalar_t> step = backward_step<scalar_t>(s, reverse, t, out2d, h0, gates, grad_out2d, g);
        step.unit_begin = u0;
        step.unit_end = u1;
        rows(step, 0, n);
      });
}

}  // namespace

GruLayerResult gru_forward(const LayerShape& s, const Tensor& input, const Tensor& h0, const Tensor& w_ih,
                           const Tensor& w_hh, const std::optional<Tensor>& b_ih, const std::optional<Tensor>& b_hh,
                           bool reverse) {
  const at::ScalarType dtype = input.scalar_type();
  const at::ScalarType opmath = opmath_dtype(dtype);
  const int64_t H = s.H;
  const Tensor x = as_rows(input.contiguous(), s.I);
  const Tensor w_ih_c = w_ih.contiguous(), w_hh_c = w_hh.contiguous();

  // x W_ih + b_ih + [b_hr, b_hz, 0]: b_hn must stay inside the reset product.
  Tensor b_hn;
  std::optional<Tensor> bias;
  if (b_ih.has_value() || b_hh.has_value()) {
    bias = b_ih.has_value() ? b_ih->clone() : at::zeros({3 * H}, input.options());
    if (b_hh.has_value()) {
      bias->narrow(0, 0, 2 * H).add_(b_hh->narrow(0, 0, 2 * H));
      b_hn = b_hh->narrow(0, 2 * H, H).contiguous();
    }
  }
  // The LSTM's projection: oneDNN's packed GEMM for large inputs, the small-rows GEMM for a step.
  Tensor x_pre = input_projection(x, w_ih_c, bias, std::nullopt);

  Tensor gates = at::empty({s.N, 4 * H}, input.options().dtype(opmath));
  Tensor output = at::empty(output_sizes(s), input.options());
  Tensor out2d = output.view({s.N, H});
  Tensor h_pre = at::empty({s.B, 3 * H}, input.options());
  Tensor h_state = h0.to(opmath, /*non_blocking=*/false, /*copy=*/true).contiguous();
  Tensor h_copy = opmath == dtype ? Tensor() : h0.contiguous().clone();

  if (const std::optional<FusedGruKernels> kernel = fused_gru_kernels_for(s, dtype, /*forward=*/true)) {
    // The tile adds b_hn to the n block's product, as the plain loop's pointwise pass does.
    Tensor recurrent_bias;
    if (b_hn.defined()) recurrent_bias = at::cat({at::zeros({2 * H}, b_hn.options()), b_hn});
    LayerShape recurrent = s;
    recurrent.I = 0;  // x_pre is added by the epilogue: the tile's input segment is empty
    const Tensor packed = at::empty({kernel->forward_packed_floats(/*I=*/0, H)}, input.options());
    kernel->forward(FusedGruForward{
        FusedWalk{&recurrent, reverse, x_pre.const_data_ptr<float>(), /*w_ih=*/nullptr,
                  w_hh_c.const_data_ptr<float>(),
                  recurrent_bias.defined() ? recurrent_bias.const_data_ptr<float>() : nullptr,
                  h_state.const_data_ptr<float>(),  // h0 until the walk is over
                  out2d.data_ptr<float>(), packed.data_ptr<float>()},
        x_pre.const_data_ptr<float>(),
        gates.data_ptr<float>(),
    });
    copy_final_hidden(s, reverse, out2d.const_data_ptr<float>(), h_state.data_ptr<float>());
    return {output, h_state, gates};
  }
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, dtype, "lstm_ext_gru_forward", [&] {
    // The plain loop: a team forward (as the LSTM's) was slower for GRU inference, whose
    // pointwise pass is too light to pay for the team's per-step meeting.
    forward_loop<scalar_t>(s, reverse, x_pre, h_pre, b_hn, gates, out2d, h_state, h_copy, w_hh_c);
  });
  return {output, h_state.to(dtype), gates};
}

GruLayerGrads gru_backward(const LayerShape& s, const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& input,
                           const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh, bool reverse,
                           const Tensor& output, const Tensor& gates, std::array<bool, 3> mask) {
  const auto [need_input, need_state, need_weights] = mask;
  const at::ScalarType dtype = input.scalar_type();
  const int64_t H = s.H;
  const Tensor w_ih_c = w_ih.contiguous(), w_hh_c = w_hh.contiguous();
  const Tensor grad_out2d = as_rows(grad_output.contiguous(), H);
  const Tensor gates_c = gates.contiguous();
  const Tensor out2d = as_rows(output.contiguous(), H);
  const Tensor h0_c = h0.contiguous();

  GruGrads g;
  g.dh_state = grad_h_n.contiguous().clone();
  g.d_x = at::empty({s.N, 3 * H}, input.options());
  g.d_hn = at::empty({s.N, H}, input.options());
  if (const std::optional<FusedGruKernels> kernel = fused_gru_kernels_for(s, dtype, /*forward=*/false)) {
    // The tile reads the gradient of h W_hh + b_hh from d_x's r and z blocks and d_hn.
    const Tensor dh_direct = at::zeros({s.B, H}, input.options());
    const Tensor packed = at::empty({kernel->backward_packed_floats(H)}, input.options());
    kernel->backward(FusedGruBackward{
        FusedBackwardWalk{&s, reverse, w_hh_c.const_data_ptr<float>(), g.d_x.data_ptr<float>(),
                          g.d_hn.data_ptr<float>(), g.dh_state.data_ptr<float>(), need_state,
                          packed.data_ptr<float>(), dh_direct.data_ptr<float>()},
        gates_c.const_data_ptr<float>(),
        out2d.const_data_ptr<float>(),
        h0_c.const_data_ptr<float>(),
        grad_out2d.const_data_ptr<float>(),
    });
  } else {
    g.steps = at::empty({2, s.B, 3 * H}, input.options());
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, dtype, "lstm_ext_gru_backward", [&] {
      if (team_applies(s, 3)) {
        backward_team<scalar_t>(s, reverse, grad_out2d, out2d, h0_c, gates_c, g, w_hh_c, need_state);
      } else {
        backward_loop<scalar_t>(s, reverse, grad_out2d, out2d, h0_c, gates_c, g, w_hh_c, need_state);
      }
    });
    g.steps = Tensor();
  }

  // Masked-out gradients are distinct empty tensors: outputs of an op must not alias.
  const auto empty = [&] { return at::empty({0}, input.options()); };
  struct {
    Tensor input, h0, w_ih, w_hh, b_ih, b_hh;
  } grads{empty(), empty(), empty(), empty(), empty(), empty()};
  if (need_input) grads.input = input_projection(g.d_x, w_ih_c.t(), std::nullopt, std::nullopt).view(input.sizes());
  if (need_state) grads.h0 = g.dh_state;
  if (need_weights) {
    grads.w_ih = transposed_product({{g.d_x, as_rows(input.contiguous(), s.I)}});
    // dW_hh's r and z rows take d_x's r and z blocks, its n rows d_hn.
    grads.w_hh = at::cat({recurrent_weight_grad(s, reverse, g.d_x.narrow(1, 0, 2 * H), out2d, h0_c),
                          recurrent_weight_grad(s, reverse, g.d_hn, out2d, h0_c)});
    grads.b_ih = row_sum(g.d_x);
    grads.b_hh = at::cat({grads.b_ih.narrow(0, 0, 2 * H), row_sum(g.d_hn)});
  }
  return {grads.input, grads.h0, grads.w_ih, grads.w_hh, grads.b_ih, grads.b_hh};
}

}  // namespace cpu
}  // namespace lstm_ext
