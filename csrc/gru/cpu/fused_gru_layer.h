// The GRU on the fused step (runtime/cpu/fused_step.h): float32 layers run one register tile per
// (rows x unit block) and step, forward and backward, with gru_gates.h's math as the tile's
// epilogue. The input projection (x_pre) is made beforehand, as the plain loop makes it: the
// candidate needs the recurrent product of its block apart from the input's (r * (h W_hn + b_hn)),
// so the tile multiplies h_{t-1} by W_hh alone, its three gate blocks side by side, and the
// epilogue adds x_pre. bfloat16, float64 and every call while LSTM_EXT_FUSED_STEP=0 keep the plain
// loop (gru_layer.cpp); both save the same gates, so either backward serves either forward.
#pragma once

#include "runtime/cpu/fused_step.h"

namespace lstm_ext {
namespace cpu {

// One call of the fused forward kernel.
struct FusedGruForward {
  FusedWalk walk;        // walk.x: x_pre, with walk.shape->I = 0; walk.bias: [0, 0, b_hn] or null
  const float* x_pre;    // [N, 3H] x W_ih + b_ih, with b_hr and b_hz folded in
  float* gates;          // [N, 4H] r, z, n and hn of every step
};

// One call of the fused backward kernel.
// The gradient of h W_hh + b_hh is d_x's r and z blocks and d_hn: the tile reads it from there.
struct FusedGruBackward {
  FusedBackwardWalk walk;  // walk.dgates: d_x [N, 3H], the gradient of x W_ih + b_ih;
                           // walk.dgates_last: d_hn [N, H], of h W_hn + b_hn; both written here.
                           // walk.dh_direct: [B, H] zeros (the update gate's direct path)
  const float* gates;      // [N, 4H] as the forward saved them
  const float* out;        // [N, H] h of every step: the next step's h_{t-1}
  const float* h0;         // [B, H]
  const float* grad_out;   // [N, H]
};

using FusedGruKernels = RecurrentFusedKernels<FusedGruForward, FusedGruBackward>;

// This CPU's kernels where a float32 call of this shape runs fused; none: the plain loop runs.
// `forward`: as fused_step_applies.
std::optional<FusedGruKernels> fused_gru_kernels_for(const LayerShape& s, at::ScalarType dtype, bool forward);

// Each capability's copy (fused_gru_layer_impl.h, by fused_gru_layer_{avx2,avx512}.cpp).
namespace AVX2 {
FusedGruKernels fused_gru_kernels();
}
namespace AVX512 {
FusedGruKernels fused_gru_kernels();
}

}  // namespace cpu
}  // namespace lstm_ext
