// The LSTM's fused kernels: runtime/cpu/fused_step_impl.h's forward walk and
// fused_backward_impl.h's backward walk with the LSTM's epilogues, included once per CPU
// capability by fused_layer_{avx2,avx512}.cpp. The gate math is gates.h's on
// at::vec::Vectorized<float> (runtime/cpu/simd.h), the same functions and the same exp and tanh
// as the plain loop's pointwise pass, so the two paths agree to rounding.
#pragma once

#include "lstm/cpu/fused_layer.h"
#include "lstm/gates.h"
#include "runtime/cpu/fused_backward_impl.h"
#include "runtime/cpu/fused_step_impl.h"
#include "runtime/cpu/simd.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Finishes `count` units of a tile's rows from their four pre-activation vectors (i, f, g, o):
// adds the bias (or the input gates made before the loop), activates, updates c in place and
// writes h in T (and the saved gates and cells).
template <typename T>
struct LstmFusedEpilogue {
  const float* xgates;  // the tile's row 0, unit u0, row stride 4H; or null: add bias instead
  const float* bias;    // packed [4][L] of the tile's block
  float* c_state;     // the tile's row 0, unit u0; row stride H
  T* h_out;
  float* saved_gates;  // row stride 4H, or null
  float* saved_cells;  // or null
  int64_t H, count;

  void operator()(int r, const FusedVec (&acc)[4]) const {
    constexpr int64_t L = kFusedLanes;
    const float* const x = xgates != nullptr ? xgates + r * 4 * H : nullptr;
    const auto pre = [&](int g) {
      return acc[g] + (x != nullptr ? FusedVec::loadu(x + g * H, count) : FusedVec::loadu(bias + g * L));
    };
    const gates::Gates<FusedVec> a = gates::activate<FusedVec>(pre(0), pre(1), pre(2), pre(3));
    float* const c_row = c_state + r * H;
    FusedVec h;
    const FusedVec c = gates::cell_forward(a, FusedVec::loadu(c_row, count), &h);
    c.store(c_row, count);
    store_lanes(h, h_out + r * H, count);
    if (saved_gates != nullptr) {  // saved for backward, as the plain loop saves them
      store_blocks(saved_gates + r * 4 * H, H, count, a.i, a.f, a.g, a.o);
      c.store(saved_cells + r * H, count);
    }
  }
};

// Step t's gate gradients for the units of C vectors from a tile's row 0, unit u0, given the
// gradient reaching each h from the next step; every pointer is at that row and unit.
struct LstmFusedBackwardEpilogue {
  const float* gates;   // saved activated gates, row stride 4H
  const float* cells;   // saved c_t, row stride H
  const float* c_prev;  // c_{t-1} of the rows below n_prev
  const float* c0;      // the other rows start from c0
  int64_t n_prev;
  const float* dy;  // the output's gradient
  float* dc;        // the gradient of c_t in, of c_{t-1} out
  float* dgates;    // row stride 4H
  int64_t H, units;  // units: H - u0

  void operator()(int r, const FusedVec* dh, int C) const {
    constexpr int64_t L = kFusedLanes;
    for (int c = 0; c < C; ++c) {
      const int64_t at = c * L, count = std::min(L, units - at);
      const auto a = load_blocks<gates::Gates<FusedVec>>(gates + r * 4 * H + at, H, count);
      const FusedVec cell = FusedVec::loadu(cells + r * H + at, count);
      const FusedVec cell_prev = FusedVec::loadu((r < n_prev ? c_prev : c0) + r * H + at, count);
      const FusedVec dh_total = dh[c] + FusedVec::loadu(dy + r * H + at, count);
      float* const dc_row = dc + r * H + at;
      const gates::GateGrads<FusedVec> d =
          gates::cell_backward(a, cell, cell_prev, dh_total, FusedVec::loadu(dc_row, count));
      store_blocks(dgates + r * 4 * H + at, H, count, d.i_pre, d.f_pre, d.g_pre, d.o_pre);
      d.c_prev.store(dc_row, count);
    }
  }
};

template <typename T>
void run_fused_lstm_forward(const FusedLstmForwardOf<T>& f) {
  const int64_t H = f.walk.shape->H;
  fused_forward_walk<4>(f.walk, [&](int64_t off, int64_t row, int64_t u0, const float* bias, const T*) {
    return LstmFusedEpilogue<T>{f.xgates ? f.xgates + (off + row) * 4 * H + u0 : nullptr,
                             bias,
                             f.c_state + row * H + u0,
                             f.walk.out + (off + row) * H + u0,
                             f.saved_gates ? f.saved_gates + (off + row) * 4 * H + u0 : nullptr,
                             f.saved_cells ? f.saved_cells + (off + row) * H + u0 : nullptr,
                             H,
                             std::min(kFusedLanes, H - u0)};
  });
}

inline void run_fused_lstm_backward(const FusedLstmBackward& f) {
  const LayerShape& s = *f.walk.shape;
  const int64_t H = s.H;
  fused_backward_walk<4>(f.walk, [&](int64_t t, int64_t row, int64_t u0) {
    const int64_t off = s.offset[t] + row, prev = previous_step(t, s.T, f.walk.reverse);
    return LstmFusedBackwardEpilogue{f.gates + off * 4 * H + u0,
                                     f.cells + off * H + u0,
                                     prev < 0 ? nullptr : f.cells + (s.offset[prev] + row) * H + u0,
                                     f.c0 + row * H + u0,
                                     rows_with_previous(s, t, prev) - row,
                                     f.grad_out + off * H + u0,
                                     f.dc_state + row * H + u0,
                                     f.walk.dgates + off * 4 * H + u0,
                                     H,
                                     H - u0};
  });
}

// This capability's copy of the kernels (fused_layer.h).
#if defined(LSTM_EXT_FUSED_BF16)
FusedLstmBf16Kernels fused_lstm_bf16_kernels() {
  return {[](int64_t I, int64_t H) { return fused_packed_floats<c10::BFloat16>(4, I, H); },
          &run_fused_lstm_forward<c10::BFloat16>};
}
#else
FusedLstmKernels fused_lstm_kernels() {
  return {[](int64_t I, int64_t H) { return fused_packed_floats(4, I, H); }, &run_fused_lstm_forward<float>,
          [](int64_t H) { return fused_backward_packed_floats(4, H); }, &run_fused_lstm_backward,
          [](int64_t I, int64_t H) { return fused_input_grad_packed_floats(4, I, H); }, &fused_input_grad<4>};
}
#endif

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
