// One LSTM layer-direction over a whole (dense or packed) sequence, on the CPU.
//
// Forward:  one GEMM projects every step's input (bias folded in); then per step one
//           recurrent GEMM and one fused pointwise pass of gates.h.
// Backward: per step one fused pointwise pass and one recurrent GEMM; after the loop the
//           input and weight gradients as a few large GEMMs over all steps at once.
// With several threads and big enough steps, the time loop runs as a team (step_team.h): each
// thread owns a slice of the hidden units and does its slice's GEMM and gate math itself.
// Buffers are allocated once per call; the time loop only takes views of them.
#include "lstm/cpu/lstm_layer.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <optional>

#include "lstm/cpu/pointwise.h"
#include "runtime/cpu/recurrent_gemm.h"
#include "runtime/cpu/step_team.h"
#include "runtime/cpu/team_walks.h"
#include "runtime/forward_only.h"
#include "lstm/layer_host.h"

namespace lstm_ext {
namespace cpu {
namespace {

using at::Tensor;

template <typename scalar_t>
void forward_loop(const LayerShape& s, bool reverse, Tensor& pre, Tensor& gates, Tensor& cells, Tensor& out2d,
                  Tensor& h_state, Tensor& c_state, const Tensor& w_hh, const Tensor& w_hr, bool save) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, P = s.P;
  const RecurrentGemm recurrent(w_hh, s.B, s.T);
  const auto rows = lstm_row_kernels<scalar_t>().forward;
  Tensor m_state;  // o * tanh(c) before the projection
  if (s.has_proj) m_state = at::empty({s.B, H}, pre.options());
  const std::optional<RecurrentGemm> projection =
      s.has_proj ? std::optional<RecurrentGemm>(std::in_place, w_hr, s.B, s.T) : std::nullopt;

  for (int64_t k = 0; k < s.T; ++k) {
    const int64_t t = reverse ? s.T - 1 - k : k;
    const int64_t n = s.rows[t], off = s.offset[t];
    if (n == 0) continue;
    scalar_t* pre_p = pre.data_ptr<scalar_t>() + off * pre.stride(0);
    Tensor pre_t;  // the tensor path's result, where the small step does not apply
    if (!recurrent.small_step(h_state.const_data_ptr<scalar_t>(), h_state.stride(0), n, pre_p, pre.stride(0), true)) {
      pre_t = recurrent.accumulate(h_state.narrow(0, 0, n), pre.narrow(0, off, n));
      pre_p = pre_t.data_ptr<scalar_t>();
    }

    const ForwardStep<scalar_t> step{
        H,
        pre_p,
        save ? gates.data_ptr<opmath_t>() + off * 4 * H : nullptr,
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
  const auto rows = lstm_row_kernels<scalar_t>().backward;
  const RecurrentGemm recurrent(w_hh.t(), s.B, s.T);  // dh_{t-1} = dgates_t @ w_hh
  const std::optional<RecurrentGemm> projection =  // dm_t = dh_t @ w_hr
      s.has_proj ? std::optional<RecurrentGemm>(std::in_place, w_hr.t(), s.B, s.T) : std::nullopt;
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
    if ((k > 0 || need_state_grad) &&
        !recurrent.small_step(dgates.const_data_ptr<scalar_t>() + off * 4 * H, 4 * H, n, dh_p, dh_state.stride(0),
                              false)) {
      Tensor dh_t = dh_state.narrow(0, 0, n);
      recurrent.write(dgates.narrow(0, off, n), dh_t);
    }
  }
}

// Forward as a team (team_walks.h): the member's gate math reads its own GEMM columns.
template <typename scalar_t>
void forward_team(const LayerShape& s, bool reverse, Tensor& pre, Tensor& gates, Tensor& cells, Tensor& out2d,
                  Tensor& h_state, Tensor& c_state, const Tensor& w_hh, bool save) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H;
  const auto rows = lstm_row_kernels<scalar_t>().forward;
  const Tensor h_buf[2] = {h_state, h_state.clone()};
  const Tensor h_n = team_forward_walk(s, reverse, w_hh, 4, h_buf,
                                       [&](const Tensor& rec, int64_t n, int64_t off, const Tensor& h_next, int64_t u0, int64_t u1) {
    ForwardStep<scalar_t> step{H,
                               pre.const_data_ptr<scalar_t>() + off * 4 * H,
                               save ? gates.data_ptr<opmath_t>() + off * 4 * H : nullptr,
                               cells.data_ptr<opmath_t>() + off * H,
                               c_state.data_ptr<opmath_t>(),
                               h_next.data_ptr<scalar_t>(),
                               out2d.data_ptr<scalar_t>() + off * H};
    step.rec = rec.const_data_ptr<scalar_t>();
    step.unit_begin = u0;
    step.unit_end = u1;
    rows(step, 0, n);
  });
  if (!h_n.is_same(h_state)) h_state.copy_(h_n);
}

// Backward as a team: dh_{t-1} = dgates_t @ w_hh, written over the gradient of h_t.
template <typename scalar_t>
void backward_team(const LayerShape& s, bool reverse, const Tensor& grad_out2d, Tensor& dh_state, Tensor& dc_state,
                   Tensor& dgates, const Tensor& gates, const Tensor& cells, const Tensor& c0, const Tensor& w_hh,
                   bool need_state_grad) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H;
  const auto rows = lstm_row_kernels<scalar_t>().backward;
  team_backward_walk(s, reverse, w_hh, dgates, dh_state, /*accumulate=*/false, need_state_grad,
                     [&](int64_t t, int64_t n, int64_t off, int64_t u0, int64_t u1) {
    const int64_t prev = previous_step(t, s.T, reverse);
    BackwardStep<scalar_t> step{H,
                                gates.const_data_ptr<opmath_t>() + off * 4 * H,
                                cells.const_data_ptr<opmath_t>() + off * H,
                                prev < 0 ? nullptr : cells.const_data_ptr<opmath_t>() + s.offset[prev] * H,
                                c0.const_data_ptr<opmath_t>(),
                                rows_with_previous(s, t, prev),
                                dh_state.const_data_ptr<scalar_t>(),
                                grad_out2d.const_data_ptr<scalar_t>() + off * H,
                                dc_state.data_ptr<opmath_t>(),
                                dgates.data_ptr<scalar_t>() + off * 4 * H,
                                nullptr};
    step.unit_begin = u0;
    step.unit_end = u1;
    rows(step, 0, n);
  });
}

}  // namespace

LstmLayerResult layer_forward(const LayerShape& s, const Tensor& input, const Tensor& h0, const Tensor& c0,
                              const Tensor& w_ih, const Tensor& w_hh, const std::optional<Tensor>& b_ih,
                              const std::optional<Tensor>& b_hh, const std::optional<Tensor>& w_hr, bool reverse) {
  ForwardBuffers b = forward_buffers(s, input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, &input_projection);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, input.scalar_type(), "lstm_ext_layer_forward", [&] {
    const bool save = !ForwardOnlyGuard::active();  // gates and cells, for backward
    if (team_applies(s, 4)) {
      forward_team<scalar_t>(s, reverse, b.pre, b.gates, b.cells, b.out2d, b.h_state, b.c_state, b.w_hh, save);
    } else {
      forward_loop<scalar_t>(s, reverse, b.pre, b.gates, b.cells, b.out2d, b.h_state, b.c_state, b.w_hh, b.w_hr, save);
    }
  });
  return b.result();
}

LstmLayerGrads layer_backward(const LayerShape& s, const Tensor& grad_output, const Tensor& grad_h_n,
                              const Tensor& grad_c_n, const Tensor& input, const Tensor& h0, const Tensor& c0,
                              const Tensor& w_ih, const Tensor& w_hh, const std::optional<Tensor>& w_hr,
                              bool reverse, const Tensor& output, const Tensor& gates, const Tensor& cells,
                              std::array<bool, 3> mask) {
  BackwardBuffers b = backward_buffers(s, grad_output, grad_h_n, grad_c_n, input, c0, w_ih, w_hh, w_hr, gates, cells);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, input.scalar_type(), "lstm_ext_layer_backward", [&] {
    if (team_applies(s, 4)) {
      backward_team<scalar_t>(s, reverse, b.grad_out2d, b.dh_state, b.dc_state, b.dgates, b.gates, b.cells, b.c0,
                              b.w_hh, /*need_state_grad=*/mask[1]);
    } else {
      backward_loop<scalar_t>(s, reverse, b.grad_out2d, b.dh_state, b.dc_state, b.dgates, b.dh_all, b.m_all, b.gates,
                              b.cells, b.c0, b.w_hh, b.w_hr, /*need_state_grad=*/mask[1]);
    }
  });
  return layer_gradients(s, reverse, mask, input, h0, output, b, &input_projection);
}

}  // namespace cpu
}  // namespace lstm_ext
