// One LSTM layer-direction over a whole (dense or packed) sequence, on the CPU.
//
// Forward:  one GEMM projects every step's input (bias folded in); then per step one
//           recurrent GEMM and one fused pointwise pass of gates.h.
// Backward: per step one fused pointwise pass and one recurrent GEMM; after the loop the
//           input and weight gradients as a few large GEMMs over all steps at once.
// With several threads and big enough steps, the time loop runs as a team (step_team.h): each
// thread owns a slice of the hidden units and does its slice's GEMM and gate math itself.
// Buffers are allocated once per call; the time loop only takes views of them.
#include "cpu/lstm_layer.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "cpu/pointwise.h"
#include "cpu/recurrent_gemm.h"
#include "cpu/step_team.h"
#include "forward_only.h"
#include "layer_host.h"

namespace lstm_ext {
namespace cpu {
namespace {

using at::Tensor;

template <typename scalar_t>
void forward_loop(const LayerShape& s, bool reverse, Tensor& pre, Tensor& gates, Tensor& cells, Tensor& out2d,
                  Tensor& h_state, Tensor& c_state, const Tensor& w_hh, const Tensor& w_hr, bool save) {
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


// Hidden units per team slice come in whole AVX-512 float vectors.
constexpr int64_t kTeamAlign = 16;
// Below this many flops per step the plain loop wins (the small-rows GEMM, no meeting per step).
constexpr int64_t kTeamMinFlops = 2 << 20;

// Whether a layer's time loop runs as a team: several threads, no projection (its GEMM would
// need a second meeting per step), more rows than the small-rows GEMM takes, big enough steps.
// LSTM_EXT_TEAM=0 keeps the plain loop, to compare the two.
bool use_team(const LayerShape& s) {
  static const bool enabled = [] {
    const char* knob = std::getenv("LSTM_EXT_TEAM");
    return knob == nullptr || std::string_view(knob) != "0";
  }();
  if (!enabled || !kTeamAvailable || s.has_proj || at::get_num_threads() < 2 || at::in_parallel_region()) return false;
  return s.B > 4 && s.H >= 2 * kTeamAlign && 2 * s.B * 4 * s.H * s.H >= kTeamMinFlops;
}

// Forward as a team. Every member's GEMM reads all of h_{t-1} while members write their slices
// of h_t, so h lives in two buffers that swap every step.
template <typename scalar_t>
void forward_team(const LayerShape& s, bool reverse, Tensor& pre, Tensor& gates, Tensor& cells, Tensor& out2d,
                  Tensor& h_state, Tensor& c_state, const Tensor& w_hh, bool save) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, B = s.B;
  const ForwardRows<scalar_t> rows = forward_rows<scalar_t>();
  const Tensor h_buf[2] = {h_state, h_state.clone()};
  const Tensor w_gates = w_hh.view({4, H, H});
  run_team(H, kTeamAlign, [&](int64_t u0, int64_t u1, int64_t owned, StepBarrier& barrier) {
    const int64_t units = u1 - u0;
    std::optional<RecurrentGemm> gemm;  // [n, H] @ the rows of this slice's units in all four gates
    Tensor rec_buf;
    barrier.guard([&] {
      gemm.emplace(w_gates.narrow(1, u0, units).reshape({4 * units, H}), B);
      rec_buf = at::empty({B, 4 * units}, pre.options());
    });
    int64_t generation = 0, cur = 0;
    for (int64_t k = 0; k < s.T; ++k) {
      const int64_t t = reverse ? s.T - 1 - k : k;
      const int64_t n = s.rows[t], off = s.offset[t];
      if (n == 0) continue;
      const bool go_on = barrier.step(owned, generation, [&] {
        const Tensor rec = gemm->product(h_buf[cur].narrow(0, 0, n), rec_buf.narrow(0, 0, n));
        ForwardStep<scalar_t> step{H,
                                   pre.const_data_ptr<scalar_t>() + off * 4 * H,
                                   save ? gates.data_ptr<opmath_t>() + off * 4 * H : nullptr,
                                   cells.data_ptr<opmath_t>() + off * H,
                                   c_state.data_ptr<opmath_t>(),
                                   h_buf[1 - cur].data_ptr<scalar_t>(),
                                   out2d.data_ptr<scalar_t>() + off * H};
        step.rec = rec.const_data_ptr<scalar_t>();
        step.rec_units = units;
        step.unit_begin = u0;
        step.unit_end = u1;
        rows(step, 0, n);
        // Rows past n (finished, or not yet started on a reversed packed walk) carry their h over.
        if (n < B) h_buf[1 - cur].narrow(0, n, B - n).narrow(1, u0, units).copy_(h_buf[cur].narrow(0, n, B - n).narrow(1, u0, units));
      });
      if (!go_on) break;
      cur = 1 - cur;
    }
  });
  int64_t steps = 0;
  for (int64_t t = 0; t < s.T; ++t) steps += s.rows[t] > 0;
  if (steps % 2 == 1) h_state.copy_(h_buf[1]);
}

// Backward as a team. A member's slice of dh_{t-1} needs every unit's gate gradients of step t,
// so the members meet between the gate math and the GEMM.
template <typename scalar_t>
void backward_team(const LayerShape& s, bool reverse, const Tensor& grad_out2d, Tensor& dh_state, Tensor& dc_state,
                   Tensor& dgates, const Tensor& gates, const Tensor& cells, const Tensor& c0, const Tensor& w_hh,
                   bool need_state_grad) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H, B = s.B;
  const BackwardRows<scalar_t> rows = backward_rows<scalar_t>();
  run_team(H, kTeamAlign, [&](int64_t u0, int64_t u1, int64_t owned, StepBarrier& barrier) {
    const int64_t units = u1 - u0;
    std::optional<RecurrentGemm> gemm;  // dh_{t-1}[:, u0:u1] = dgates_t @ w_hh[:, u0:u1]
    Tensor dh_buf;
    barrier.guard([&] {
      gemm.emplace(w_hh.narrow(1, u0, units).t(), B);
      dh_buf = at::empty({B, units}, dgates.options());
    });
    int64_t generation = 0;
    for (int64_t k = s.T - 1; k >= 0; --k) {
      const int64_t t = reverse ? s.T - 1 - k : k;
      const int64_t n = s.rows[t], off = s.offset[t];
      if (n == 0) continue;
      const int64_t prev = previous_step(t, s.T, reverse);
      const bool go_on = barrier.step(owned, generation, [&] {
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
      if (!go_on) break;
      // The last step walked needs no gradient for h0 unless one was asked for.
      if (k == 0 && !need_state_grad) continue;
      barrier.guard([&] {
        const Tensor dh = gemm->product(dgates.narrow(0, off, n), dh_buf.narrow(0, 0, n));
        dh_state.narrow(0, 0, n).narrow(1, u0, units).copy_(dh);
      });
    }
  });
}
}  // namespace

LayerForward layer_forward(const LayerShape& s, const Tensor& input, const Tensor& h0, const Tensor& c0,
                           const Tensor& w_ih, const Tensor& w_hh, const std::optional<Tensor>& b_ih,
                           const std::optional<Tensor>& b_hh, const std::optional<Tensor>& w_hr, bool reverse) {
  ForwardBuffers b = forward_buffers(s, input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, &input_projection);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, input.scalar_type(), "lstm_ext_layer_forward", [&] {
    const bool save = !ForwardOnlyGuard::active();  // gates and cells, for backward
    if (use_team(s)) {
      forward_team<scalar_t>(s, reverse, b.pre, b.gates, b.cells, b.out2d, b.h_state, b.c_state, b.w_hh, save);
    } else {
      forward_loop<scalar_t>(s, reverse, b.pre, b.gates, b.cells, b.out2d, b.h_state, b.c_state, b.w_hh, b.w_hr, save);
    }
  });
  return b.result();
}

LayerBackward layer_backward(const LayerShape& s, const Tensor& grad_output, const Tensor& grad_h_n,
                             const Tensor& grad_c_n, const Tensor& input, const Tensor& h0, const Tensor& c0,
                             const Tensor& w_ih, const Tensor& w_hh, const std::optional<Tensor>& w_hr,
                             bool reverse, const Tensor& output, const Tensor& gates, const Tensor& cells,
                             std::array<bool, 3> mask) {
  BackwardBuffers b = backward_buffers(s, grad_output, grad_h_n, grad_c_n, input, c0, w_ih, w_hh, w_hr, gates, cells);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, input.scalar_type(), "lstm_ext_layer_backward", [&] {
    if (use_team(s)) {
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
