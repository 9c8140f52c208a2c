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

#include "lstm/cpu/fused_layer.h"
#include "lstm/cpu/pointwise.h"
#include "lstm/layer_host.h"
#include "runtime/cpu/gemm/recurrent_gemm.h"
#include "runtime/cpu/step_team.h"
#include "runtime/cpu/team_walks.h"
#include "runtime/forward_only.h"

namespace lstm_ext {
namespace cpu {
namespace {

using at::Tensor;

template <typename scalar_t>
void forward_loop(const LayerShape& s, bool reverse, ForwardBuffers& b, bool save) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, P = s.P;
  const RecurrentGemm recurrent(b.w_hh, s.B, s.T);
  const auto rows = lstm_row_kernels<scalar_t>().forward;
  Tensor m_state;  // o * tanh(c) before the projection
  if (s.has_proj) m_state = at::empty({s.B, H}, b.pre.options());
  const std::optional<RecurrentGemm> projection =
      s.has_proj ? std::optional<RecurrentGemm>(std::in_place, b.w_hr, s.B, s.T) : std::nullopt;

  walk_forward(s, reverse, [&](int64_t, int64_t, int64_t n, int64_t off) {
    scalar_t* pre_p = b.pre.data_ptr<scalar_t>() + off * b.pre.stride(0);
    Tensor pre_t;  // the tensor path's result, where the small step does not apply
    if (!recurrent.small_step(b.h_state.const_data_ptr<scalar_t>(), b.h_state.stride(0), n, pre_p, b.pre.stride(0),
                              true)) {
      pre_t = recurrent.accumulate(b.h_state.narrow(0, 0, n), b.pre.narrow(0, off, n));
      pre_p = pre_t.data_ptr<scalar_t>();
    }

    const ForwardStep<scalar_t> step{
        H,
        pre_p,
        save ? b.gates.data_ptr<opmath_t>() + off * 4 * H : nullptr,
        b.cells.data_ptr<opmath_t>() + off * H,
        b.c_state.data_ptr<opmath_t>(),
        s.has_proj ? m_state.data_ptr<scalar_t>() : b.h_state.data_ptr<scalar_t>(),
        s.has_proj ? nullptr : b.out2d.data_ptr<scalar_t>() + off * P,
    };
    at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(step, begin, end); });

    if (s.has_proj) {
      Tensor out_t = b.out2d.narrow(0, off, n);
      projection->write(m_state.narrow(0, 0, n), out_t);
      b.h_state.narrow(0, 0, n).copy_(out_t);
    }
  });
}

template <typename scalar_t>
void backward_loop(const LayerShape& s, bool reverse, BackwardBuffers& b, bool need_state_grad) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, P = s.P;
  const auto rows = lstm_row_kernels<scalar_t>().backward;
  const RecurrentGemm recurrent(b.w_hh.t(), s.B, s.T);  // dh_{t-1} = dgates_t @ w_hh
  const std::optional<RecurrentGemm> projection =  // dm_t = dh_t @ w_hr
      s.has_proj ? std::optional<RecurrentGemm>(std::in_place, b.w_hr.t(), s.B, s.T) : std::nullopt;
  Tensor dm_state;  // gradient reaching o * tanh(c), through the projection
  if (s.has_proj) dm_state = at::empty({s.B, H}, b.dgates.options());

  walk_backward(s, reverse, [&](int64_t k, int64_t t, int64_t n, int64_t off) {
    const int64_t prev = previous_step(t, s.T, reverse);
    const int64_t n_prev = rows_with_previous(s, t, prev);

    const scalar_t* dy_p = b.grad_out2d.const_data_ptr<scalar_t>() + off * P;
    scalar_t* dh_p = b.dh_state.data_ptr<scalar_t>();
    if (s.has_proj) {
      // The whole gradient of h_t is needed before the projection's GEMM.
      scalar_t* dh_all_p = b.dh_all.data_ptr<scalar_t>() + off * P;
      for (int64_t i = 0; i < n * P; ++i) {
        dh_all_p[i] = static_cast<scalar_t>(static_cast<opmath_t>(dh_p[i]) + static_cast<opmath_t>(dy_p[i]));
      }
      Tensor dm_t = dm_state.narrow(0, 0, n);
      projection->write(b.dh_all.narrow(0, off, n), dm_t);
    }

    const BackwardStep<scalar_t> step{
        H,
        b.gates.const_data_ptr<opmath_t>() + off * 4 * H,
        b.cells.const_data_ptr<opmath_t>() + off * H,
        prev < 0 ? nullptr : b.cells.const_data_ptr<opmath_t>() + s.offset[prev] * H,
        b.c0.const_data_ptr<opmath_t>(),
        n_prev,
        s.has_proj ? dm_state.const_data_ptr<scalar_t>() : dh_p,
        s.has_proj ? nullptr : dy_p,
        b.dc_state.data_ptr<opmath_t>(),
        b.dgates.data_ptr<scalar_t>() + off * 4 * H,
        s.has_proj ? b.m_all.data_ptr<scalar_t>() + off * H : nullptr,
    };
    at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(step, begin, end); });

    // The last step walked needs no gradient for h0 unless one was asked for.
    if ((k > 0 || need_state_grad) &&
        !recurrent.small_step(b.dgates.const_data_ptr<scalar_t>() + off * 4 * H, 4 * H, n, dh_p,
                              b.dh_state.stride(0), false)) {
      Tensor dh_t = b.dh_state.narrow(0, 0, n);
      recurrent.write(b.dgates.narrow(0, off, n), dh_t);
    }
  });
}

// Forward as a team (team_walks.h): the member's gate math reads its own GEMM columns.
template <typename scalar_t>
void forward_team(const LayerShape& s, bool reverse, ForwardBuffers& b, bool save) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H;
  const auto rows = lstm_row_kernels<scalar_t>().forward;
  const Tensor h_buf[2] = {b.h_state, b.h_state.clone()};
  const Tensor h_n = team_forward_walk(s, reverse, b.w_hh, 4, h_buf,
                                       [&](const Tensor& rec, int64_t n, int64_t off, const Tensor& h_next, int64_t u0, int64_t u1) {
    ForwardStep<scalar_t> step{H,
                               b.pre.const_data_ptr<scalar_t>() + off * 4 * H,
                               save ? b.gates.data_ptr<opmath_t>() + off * 4 * H : nullptr,
                               b.cells.data_ptr<opmath_t>() + off * H,
                               b.c_state.data_ptr<opmath_t>(),
                               h_next.data_ptr<scalar_t>(),
                               b.out2d.data_ptr<scalar_t>() + off * H};
    step.rec = rec.const_data_ptr<scalar_t>();
    step.unit_begin = u0;
    step.unit_end = u1;
    rows(step, 0, n);
  });
  if (!h_n.is_same(b.h_state)) b.h_state.copy_(h_n);
}

// Backward as a team: dh_{t-1} = dgates_t @ w_hh, written over the gradient of h_t.
template <typename scalar_t>
void backward_team(const LayerShape& s, bool reverse, BackwardBuffers& b, bool need_state_grad) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H;
  const auto rows = lstm_row_kernels<scalar_t>().backward;
  team_backward_walk(s, reverse, b.w_hh, b.dgates, b.dh_state, /*accumulate=*/false, need_state_grad,
                     [&](int64_t t, int64_t n, int64_t off, int64_t u0, int64_t u1) {
    const int64_t prev = previous_step(t, s.T, reverse);
    BackwardStep<scalar_t> step{H,
                                b.gates.const_data_ptr<opmath_t>() + off * 4 * H,
                                b.cells.const_data_ptr<opmath_t>() + off * H,
                                prev < 0 ? nullptr : b.cells.const_data_ptr<opmath_t>() + s.offset[prev] * H,
                                b.c0.const_data_ptr<opmath_t>(),
                                rows_with_previous(s, t, prev),
                                b.dh_state.const_data_ptr<scalar_t>(),
                                b.grad_out2d.const_data_ptr<scalar_t>() + off * H,
                                b.dc_state.data_ptr<opmath_t>(),
                                b.dgates.data_ptr<scalar_t>() + off * 4 * H,
                                nullptr};
    step.unit_begin = u0;
    step.unit_end = u1;
    rows(step, 0, n);
  });
}

}  // namespace

void LstmBackend::forward(const LayerShape& s, bool reverse, ForwardBuffers& b) {
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, b.output.scalar_type(), "lstm_ext_layer_forward", [&] {
    const bool save = !ForwardOnlyGuard::active();  // gates and cells, for backward
    if (team_applies(s, 4)) {
      forward_team<scalar_t>(s, reverse, b, save);
    } else {
      forward_loop<scalar_t>(s, reverse, b, save);
    }
  });
}

void LstmBackend::backward(const LayerShape& s, bool reverse, BackwardBuffers& b, bool need_state_grad) {
  if (fused_lstm_backward(s, reverse, b, need_state_grad)) return;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, b.dgates.scalar_type(), "lstm_ext_layer_backward", [&] {
    if (team_applies(s, 4)) {
      backward_team<scalar_t>(s, reverse, b, need_state_grad);
    } else {
      backward_loop<scalar_t>(s, reverse, b, need_state_grad);
    }
  });
}

}  // namespace cpu
}  // namespace lstm_ext
