// The time walks of a team (step_team.h), shared by the LSTM's and the GRU's layer kernels: a
// member owns units [u0, u1) and runs their share of each step's recurrent GEMM and gate math.
// Only the gate math differs between the layers; it comes in as a callable.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "runtime/cpu/gemm/recurrent_gemm.h"
#include "runtime/cpu/step_team.h"
#include "runtime/layer_steps.h"

namespace lstm_ext {
namespace cpu {

// Forward: per step, rec = h_{t-1}[:n] @ (its units' rows of w_hh, `gates` blocks)^T, then
// gate_math(rec, n, off, h_next, u0, u1) for the member's units, writing h_t into h_next. Every
// member's GEMM reads all of h_{t-1} while members write their units of h_t, so h lives in two
// buffers (h_buf, each [B, H], both holding h0) that swap every step. Returns the one holding h_n.
template <typename GateMath>
at::Tensor team_forward_walk(const LayerShape& s, bool reverse, const at::Tensor& w_hh, int64_t gates,
                             const at::Tensor (&h_buf)[2], GateMath&& gate_math) {
  run_team(s.H, kTeamAlign, [&](int64_t u0, int64_t u1, int64_t owned, StepBarrier& barrier) {
    const int64_t units = u1 - u0;
    std::optional<RecurrentGemm> gemm;
    at::Tensor rec_buf;
    barrier.guard([&] {
      gemm.emplace(unit_rows(w_hh, gates, u0, units), s.B, s.T);
      rec_buf = at::empty({s.B, gates * units}, h_buf[0].options());
    });
    int64_t generation = 0, cur = 0;
    for (int64_t k = 0; k < s.T; ++k) {
      const int64_t t = reverse ? s.T - 1 - k : k;
      const int64_t n = s.rows[t], off = s.offset[t];
      if (n == 0) continue;
      const bool go_on = barrier.step(owned, generation, [&] {
        const at::Tensor rec = gemm->product(h_buf[cur].narrow(0, 0, n), rec_buf.narrow(0, 0, n));
        gate_math(rec, n, off, h_buf[1 - cur], u0, u1);
        carry_rows(h_buf[cur], h_buf[1 - cur], n, u0, units);
      });
      if (!go_on) break;
      cur = 1 - cur;
    }
  });
  return h_buf[walked_steps(s) % 2];
}

// Backward: per step, gate_math(t, n, off, u0, u1) for the member's units (it reads dh_state's
// columns of them and writes the step's rows of d_rec, d_rec_rows(t, off, n) [n, gates * H]); the
// members meet, since dh_{t-1}[:n, u0:u1] = d_rec_t @ w_hh[:, u0:u1] needs every unit's d_rec_t;
// then that product is written into dh_state (or added to it, where the gate math left a direct
// part there). A member may start the next step's gate math while another still reads these
// rows, so consecutive steps need distinct rows.
template <typename DRecRows, typename GateMath>
void team_backward_walk_rows(const LayerShape& s, bool reverse, const at::Tensor& w_hh, DRecRows&& d_rec_rows,
                             const at::Tensor& dh_state, bool accumulate, bool need_state_grad, GateMath&& gate_math) {
  run_team(s.H, kTeamAlign, [&](int64_t u0, int64_t u1, int64_t owned, StepBarrier& barrier) {
    const int64_t units = u1 - u0;
    std::optional<RecurrentGemm> gemm;
    at::Tensor dh_buf;
    barrier.guard([&] {
      gemm.emplace(w_hh.narrow(1, u0, units).t(), s.B, s.T);
      dh_buf = at::empty({s.B, units}, dh_state.options());
    });
    int64_t generation = 0;
    for (int64_t k = s.T - 1; k >= 0; --k) {
      const int64_t t = reverse ? s.T - 1 - k : k;
      const int64_t n = s.rows[t], off = s.offset[t];
      if (n == 0) continue;
      if (!barrier.step(owned, generation, [&] { gate_math(t, n, off, u0, u1); })) break;
      // The last step walked needs no gradient for h0 unless one was asked for.
      if (k == 0 && !need_state_grad) continue;
      barrier.guard([&] {
        const at::Tensor product = gemm->product(d_rec_rows(t, off, n), dh_buf.narrow(0, 0, n));
        at::Tensor mine = dh_state.narrow(0, 0, n).narrow(1, u0, units);
        if (accumulate) mine.add_(product);
        else mine.copy_(product);
      });
    }
  });
}

// The walk over d_rec [N, gates * H], every step's rows at its offset.
template <typename GateMath>
void team_backward_walk(const LayerShape& s, bool reverse, const at::Tensor& w_hh, const at::Tensor& d_rec,
                        const at::Tensor& dh_state, bool accumulate, bool need_state_grad, GateMath&& gate_math) {
  team_backward_walk_rows(
      s, reverse, w_hh, [&](int64_t, int64_t off, int64_t n) { return d_rec.narrow(0, off, n); }, dh_state,
      accumulate, need_state_grad, gate_math);
}

}  // namespace cpu
}  // namespace lstm_ext
