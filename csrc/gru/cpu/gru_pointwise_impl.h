// The GRU's pointwise row kernels, included once per CPU capability by gru_pointwise_*.cpp, each
// of which defines CPU_CAPABILITY first. gru_gates.h's functions run here on whole SIMD vectors
// (runtime/cpu/simd.h), in the opmath type: float for bfloat16 storage.
#pragma once

#include "gru/cpu/gru_pointwise.h"
#include "gru/gru_gates.h"
#include "runtime/cpu/simd.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Forward of units [lane.j, lane.j + lane.count) of row r: both projections in, the gates (with
// hn) and the new memory out.
template <typename scalar_t>
inline void forward_units(const GruForwardStep<scalar_t>& s, int64_t r, Lanes<at::opmath_type<scalar_t>> lane) {
  using V = at::vec::Vectorized<at::opmath_type<scalar_t>>;
  const int64_t H = s.H;
  const scalar_t* x = s.x_pre + r * 3 * H;
  const scalar_t* h = s.h_pre + r * 3 * H;
  V hn = lane.load(h + 2 * H);
  if (s.b_hn) hn = hn + lane.load(s.b_hn);
  const gru::Gates<V> a =
      gru::activate<V>(lane.load(x) + lane.load(h), lane.load(x + H) + lane.load(h + H), lane.load(x + 2 * H), hn);
  typename GruForwardStep<scalar_t>::opmath_t* state = s.h_state + r * H;
  const V h_new = gru::cell_forward(a, lane.load(state));
  auto* g = s.gates + r * 4 * H;
  lane.store(g, a.r);
  lane.store(g + H, a.z);
  lane.store(g + 2 * H, a.n);
  lane.store(g + 3 * H, a.hn);
  lane.store(state, h_new);
  if (s.h_copy) lane.store(s.h_copy + r * H, h_new);
  lane.store(s.out + r * H, h_new);
}

// Backward of the same units: the gradient of h' in, both projections' gradients and the direct
// part of dh_prev out.
template <typename scalar_t>
inline void backward_units(const GruBackwardStep<scalar_t>& s, int64_t r,
                           Lanes<at::opmath_type<scalar_t>> lane) {
  using V = at::vec::Vectorized<at::opmath_type<scalar_t>>;
  const int64_t H = s.H;
  const auto* g = s.gates + r * 4 * H;
  const gru::Gates<V> a{lane.load(g), lane.load(g + H), lane.load(g + 2 * H), lane.load(g + 3 * H)};
  scalar_t* dh_row = s.dh + r * H;
  V dh = lane.load(dh_row);
  if (s.dy) dh = dh + lane.load(s.dy + r * H);
  const scalar_t* h_prev = r < s.n_prev ? s.h_prev + r * H : s.h0 + r * H;
  const gru::GateGrads<V> d = gru::cell_backward(a, lane.load(h_prev), dh);
  scalar_t* dx = s.d_x + r * 3 * H;
  scalar_t* dhh = s.d_h + r * 3 * H;
  lane.store(dx, d.r_pre);
  lane.store(dx + H, d.z_pre);
  lane.store(dx + 2 * H, d.n_x);
  lane.store(dhh, d.r_pre);
  lane.store(dhh + H, d.z_pre);
  lane.store(dhh + 2 * H, d.hn);
  lane.store(s.d_hn + r * H, d.hn);
  lane.store(dh_row, d.h_prev);
}

// This capability's copy of the table gru_row_kernels<scalar_t>() picks from.
LSTM_EXT_LANE_ROW_KERNELS(gru_row_kernels, GruForwardStep, GruBackwardStep)

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
