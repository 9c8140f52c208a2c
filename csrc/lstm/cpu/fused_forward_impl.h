// The LSTM's fused forward kernel: runtime/cpu/fused_step_impl.h's walk with the LSTM's
// epilogue, included once per CPU capability by fused_forward_{avx2,avx512}.cpp. The gate math
// is gates.h's on at::vec::Vectorized<float> (runtime/cpu/simd.h), the same functions and the
// same exp and tanh as the plain loop's pointwise pass, so the two paths agree to rounding.
#pragma once

#include "lstm/cpu/fused_forward.h"
#include "lstm/gates.h"
#include "runtime/cpu/fused_step_impl.h"
#include "runtime/cpu/simd.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Finishes `count` units of a tile's rows from their four pre-activation vectors (i, f, g, o):
// adds the bias, activates, updates c in place and writes h (and the saved gates and cells).
struct LstmFusedEpilogue {
  const float* bias;  // packed [4][L] of the tile's block
  float* c_state;     // the tile's row 0, unit u0; row stride H
  float* h_out;
  float* saved_gates;  // row stride 4H, or null
  float* saved_cells;  // or null
  int64_t H, count;

  void operator()(int r, const FusedVec (&acc)[4]) const {
    constexpr int64_t L = kFusedLanes;
    const gates::Gates<FusedVec> a =
        gates::activate<FusedVec>(acc[0] + FusedVec::loadu(bias), acc[1] + FusedVec::loadu(bias + L),
                                  acc[2] + FusedVec::loadu(bias + 2 * L), acc[3] + FusedVec::loadu(bias + 3 * L));
    float* const c_row = c_state + r * H;
    FusedVec h;
    const FusedVec c = gates::cell_forward(a, FusedVec::loadu(c_row, count), &h);
    c.store(c_row, count);
    h.store(h_out + r * H, count);
    if (saved_gates != nullptr) {  // saved for backward, as the plain loop saves them
      float* const g_row = saved_gates + r * 4 * H;
      a.i.store(g_row, count);
      a.f.store(g_row + H, count);
      a.g.store(g_row + 2 * H, count);
      a.o.store(g_row + 3 * H, count);
      c.store(saved_cells + r * H, count);
    }
  }
};

inline void run_fused_lstm_forward(const FusedLstmForward& f) {
  const int64_t H = f.walk.shape->H;
  fused_forward_walk<4>(f.walk, [&](int64_t off, int64_t row, int64_t u0, const float* bias) {
    return LstmFusedEpilogue{bias,
                             f.c_state + row * H + u0,
                             f.walk.out + (off + row) * H + u0,
                             f.saved_gates ? f.saved_gates + (off + row) * 4 * H + u0 : nullptr,
                             f.saved_cells ? f.saved_cells + (off + row) * H + u0 : nullptr,
                             H,
                             std::min(kFusedLanes, H - u0)};
  });
}

// This capability's copy of the kernel (fused_forward.h).
FusedLstmForwardKernel fused_lstm_forward_kernel() {
  return {[](int64_t I, int64_t H) { return fused_packed_floats(4, I, H); }, &run_fused_lstm_forward};
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
