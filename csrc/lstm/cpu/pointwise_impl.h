// The LSTM's pointwise row kernels, included once per CPU capability by pointwise_*.cpp, each of
// which defines CPU_CAPABILITY first. gates.h's functions run here on whole SIMD vectors
// (runtime/cpu/simd.h), in the opmath type: float for bfloat16 storage, so bfloat16 runs
// vectorized too.
#pragma once

#include "lstm/cpu/pointwise.h"
#include "lstm/gates.h"
#include "runtime/cpu/simd.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Units [lane.j, lane.j + lane.count) of row r, forward: pre-activations in, the activated gates,
// c and h out.
template <typename scalar_t>
inline void forward_units(const ForwardStep<scalar_t>& s, int64_t r, Lanes<at::opmath_type<scalar_t>> lane) {
  using V = at::vec::Vectorized<at::opmath_type<scalar_t>>;
  const int64_t H = s.H;
  const scalar_t* pre_row = s.pre + r * 4 * H;
  V pre[4] = {lane.load(pre_row), lane.load(pre_row + H), lane.load(pre_row + 2 * H), lane.load(pre_row + 3 * H)};
  if (s.rec) {  // a team member's recurrent product, added in the opmath type
    const int64_t units = s.unit_end - s.unit_begin;
    const scalar_t* rec_row = s.rec + r * 4 * units + (lane.j - s.unit_begin);
    for (int64_t gate = 0; gate < 4; ++gate) pre[gate] = pre[gate] + load_as<V>(rec_row + gate * units, lane.count);
  }
  const gates::Gates<V> a = gates::activate<V>(pre[0], pre[1], pre[2], pre[3]);
  auto* c_row = s.c_state + r * H;
  V h;
  const V c = gates::cell_forward(a, lane.load(c_row), &h);
  if (s.gates) {  // saved for backward; an inference-only forward leaves them out
    auto* g_row = s.gates + r * 4 * H;
    lane.store(g_row, a.i);
    lane.store(g_row + H, a.f);
    lane.store(g_row + 2 * H, a.g);
    lane.store(g_row + 3 * H, a.o);
    lane.store(s.cells + r * H, c);
  }
  lane.store(c_row, c);
  lane.store(s.h_out + r * H, h);
  if (s.out) lane.store(s.out + r * H, h);
}

// The same units, backward: the gradients of h and c in, those of the pre-activations and c_prev out.
template <typename scalar_t>
inline void backward_units(const BackwardStep<scalar_t>& s, int64_t r, Lanes<at::opmath_type<scalar_t>> lane) {
  using V = at::vec::Vectorized<at::opmath_type<scalar_t>>;
  const int64_t H = s.H;
  const auto* g_row = s.gates + r * 4 * H;
  const gates::Gates<V> a{lane.load(g_row), lane.load(g_row + H), lane.load(g_row + 2 * H), lane.load(g_row + 3 * H)};
  const V c = lane.load(s.cells + r * H);
  const V c_prev = lane.load(r < s.n_prev ? s.c_prev + r * H : s.c0 + r * H);
  V dh = lane.load(s.dh + r * H);
  if (s.dy) dh = dh + lane.load(s.dy + r * H);
  auto* dc_row = s.dc + r * H;
  const gates::GateGrads<V> d = gates::cell_backward(a, c, c_prev, dh, lane.load(dc_row));
  scalar_t* dg_row = s.dgates + r * 4 * H;
  lane.store(dg_row, d.i_pre);
  lane.store(dg_row + H, d.f_pre);
  lane.store(dg_row + 2 * H, d.g_pre);
  lane.store(dg_row + 3 * H, d.o_pre);
  lane.store(dc_row, d.c_prev);
  if (s.m) lane.store(s.m + r * H, gates::use_gate(a, c));
}

// This capability's copy of the table lstm_row_kernels<scalar_t>() picks from.
LSTM_EXT_LANE_ROW_KERNELS(lstm_row_kernels, ForwardStep, BackwardStep)

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
