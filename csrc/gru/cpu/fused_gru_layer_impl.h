// The GRU's fused kernels: runtime/cpu/fused_step_impl.h's forward walk and
// fused_backward_impl.h's backward walk with gru_gates.h's math as their epilogues, included once
// per CPU capability by fused_gru_layer_{avx2,avx512}.cpp. The same functions, exp and tanh as the
// plain loop's row kernels (gru_pointwise_impl.h), so the two paths agree to rounding.
#pragma once

#include "gru/cpu/fused_gru_layer.h"
#include "gru/gru_gates.h"
#include "runtime/cpu/fused_backward_impl.h"
#include "runtime/cpu/fused_step_impl.h"
#include "runtime/cpu/simd.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Finishes `count` units of a tile's rows from their recurrent products (r, z, hn blocks): adds
// x_pre and b_hn, runs the gates and the update, and writes h and the saved gates. Every pointer
// is at the tile's row 0 and unit u0.
struct GruFusedEpilogue {
  const float* x_pre;   // row stride 3H
  const float* bias;    // packed [3][L] of the tile's block: 0, 0, b_hn
  const float* h_prev;  // row stride H
  float* h_out;
  float* gates;  // row stride 4H
  int64_t H, count;

  void operator()(int r, const FusedVec (&acc)[3]) const {
    constexpr int64_t L = kFusedLanes;
    const float* const x = x_pre + r * 3 * H;
    const gru::Gates<FusedVec> a = gru::activate<FusedVec>(
        acc[0] + FusedVec::loadu(x, count), acc[1] + FusedVec::loadu(x + H, count), FusedVec::loadu(x + 2 * H, count),
        acc[2] + FusedVec::loadu(bias + 2 * L));
    const FusedVec h = gru::cell_forward(a, FusedVec::loadu(h_prev + r * H, count));
    store_blocks(gates + r * 4 * H, H, count, a.r, a.z, a.n, a.hn);
    h.store(h_out + r * H, count);
  }
};

// Step t's gradients for the units of C vectors from a tile's row 0, unit u0, given the gradient
// the tile made for each h; every pointer is at that row and unit.
struct GruFusedBackwardEpilogue {
  const float* gates;   // row stride 4H
  const float* h_prev;  // h_{t-1} of the rows below n_prev
  const float* h0;      // the other rows start from h0
  int64_t n_prev;
  const float* dy;   // the output's gradient
  float* dh_direct;  // the update gate's direct part of h_t's gradient in, of h_{t-1}'s out
  float* d_x;        // row stride 3H
  float* d_hn;       // row stride H
  int64_t H, units;  // units: H - u0

  void operator()(int r, const FusedVec* dh, int C) const {
    constexpr int64_t L = kFusedLanes;
    for (int c = 0; c < C; ++c) {
      const int64_t at = c * L, count = std::min(L, units - at), row_at = r * H + at;
      const auto a = load_blocks<gru::Gates<FusedVec>>(gates + r * 4 * H + at, H, count);
      const FusedVec dh_total =
          dh[c] + FusedVec::loadu(dy + row_at, count) + FusedVec::loadu(dh_direct + row_at, count);
      const FusedVec previous = FusedVec::loadu((r < n_prev ? h_prev : h0) + row_at, count);
      const gru::GateGrads<FusedVec> d = gru::cell_backward(a, previous, dh_total);
      float* const dx_row = d_x + r * 3 * H + at;
      d.r_pre.store(dx_row, count);
      d.z_pre.store(dx_row + H, count);
      d.n_x.store(dx_row + 2 * H, count);
      d.hn.store(d_hn + row_at, count);
      d.h_prev.store(dh_direct + row_at, count);
    }
  }
};

inline void run_fused_gru_forward(const FusedGruForward& f) {
  const int64_t H = f.walk.shape->H;
  fused_forward_walk<3>(f.walk, [&](int64_t off, int64_t row, int64_t u0, const float* bias, const float* h_prev) {
    const int64_t at = off + row;
    return GruFusedEpilogue{f.x_pre + at * 3 * H + u0, bias,         h_prev + u0, f.walk.out + at * H + u0,
                            f.gates + at * 4 * H + u0, H, std::min(kFusedLanes, H - u0)};
  });
}

inline void run_fused_gru_backward(const FusedGruBackward& f) {
  const LayerShape& s = *f.walk.shape;
  const int64_t H = s.H;
  fused_backward_walk<3>(f.walk, [&](int64_t t, int64_t row, int64_t u0) {
    const int64_t at = s.offset[t] + row, prev = previous_step(t, s.T, f.walk.reverse);
    return GruFusedBackwardEpilogue{f.gates + at * 4 * H + u0,
                                    prev < 0 ? nullptr : f.out + (s.offset[prev] + row) * H + u0,
                                    f.h0 + row * H + u0,
                                    rows_with_previous(s, t, prev) - row,
                                    f.grad_out + at * H + u0,
                                    f.walk.dh_direct + row * H + u0,
                                    f.walk.dgates + at * 3 * H + u0,
                                    f.walk.dgates_last + at * H + u0,
                                    H,
                                    H - u0};
  });
}

// This capability's copy of the kernels (fused_gru_layer.h).
FusedGruKernels fused_gru_kernels() {
  return recurrent_fused_kernels<3>(&run_fused_gru_forward, &run_fused_gru_backward);
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
