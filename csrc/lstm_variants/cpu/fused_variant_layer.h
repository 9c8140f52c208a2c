// The LSTM variants on the fused step (runtime/cpu/fused_step.h): float32 layers with peephole
// connections and zoneout run one register tile per (rows x unit block) and step, forward and
// backward, with variant_gates.h's math as the tile's epilogue. The tile multiplies [x_t | h_{t-1}]
// by [W_ih ; W_hh], as the LSTM's does, so the input projection needs no GEMM of its own and no
// [N, 4H] buffer; where the caller made the input gates beforehand (VariantInput without w_ih),
// the tile multiplies h_{t-1} alone and the epilogue adds them. Layer norm and the lesson's use
// gate need a whole row of the step (its statistics, or a second product over every unit) before
// any unit is finished: they run row_split_variant_layer.h's walk instead. While
// LSTM_EXT_FUSED_STEP=0 every call runs the plain loop (lstm_variant_layer.cpp). All of them write
// and read the same saved tensors (variant_buffers.h), so any backward serves any forward.
#pragma once

#include <ATen/core/Tensor.h>

#include "lstm_variants/cpu/variant_buffers.h"
#include "runtime/cpu/fused_step.h"

namespace lstm_ext {
namespace cpu {

// The variant forward on the fused step, where it applies: fills f as the plain loop does and
// returns true; false: it does not apply, and nothing was written.
bool fused_variant_forward(const LayerShape& s, bool reverse, const VariantTensors& o, const VariantInput& input,
                           const at::Tensor& w_hh, VariantSaved& f);

// The variant backward's time loop on the fused step, where it applies: writes g.dgates (= g.drec),
// and the gradients of h0 and c0 into g.dh and g.dc where need_state_grad; false: it does not apply.
// carried: [N, H] the cell state each step passed on (after zoneout).
bool fused_variant_backward(const LayerShape& s, bool reverse, const VariantTensors& o, const VariantSaved& f,
                            const at::Tensor& carried, const at::Tensor& c0, const at::Tensor& grad_out2d,
                            VariantGrads& g, const at::Tensor& w_hh, bool need_state_grad);

// The options one epilogue reads; every pointer is null where the option is off.
struct FusedVariantOptions {
  const float* peephole;  // [3H] p_i, p_f, p_o
  const float* keep_h;    // [N, H] zoneout weights of every step's rows: a 0/1 mask, or the probability
  const float* keep_c;
};

// One call of the fused forward kernel.
struct FusedVariantForward {
  FusedWalk walk;  // walk.x: x, or the input gates with walk.shape->I = 0 (no input segment)
  const float* xgates;  // [N, 4H] the input gates (i f g o) made beforehand, or null: x in the tile
  FusedVariantOptions options;
  float* c_state;  // [B, H]: c0 in, c_n out; each step reads and writes its rows in place
  float* gates;    // [N, 4H] the activated gates
  float* cells;    // [N, H] c before zoneout
  float* states;   // [N, H] c after zoneout, or null without zoneout on c
};

// One call of the fused backward kernel.
struct FusedVariantBackward {
  FusedBackwardWalk walk;  // walk.dgates: [N, 4H] written here; walk.dh_direct with zoneout on h
  FusedVariantOptions options;
  const float* gates;     // [N, 4H] the saved activated gates
  const float* cells;     // [N, H] c before zoneout
  const float* carried;   // [N, H] c after zoneout (cells itself without zoneout on c)
  const float* c0;        // [B, H]
  const float* grad_out;  // [N, H]
  float* dc_state;        // [B, H]: the gradient of c_n in, of c0 out
};

using FusedVariantKernels = RecurrentFusedKernels<FusedVariantForward, FusedVariantBackward>;

// Each capability's copy (fused_variant_layer_impl.h, by fused_variant_layer_{avx2,avx512}.cpp).
namespace AVX2 {
FusedVariantKernels fused_variant_kernels();
}
namespace AVX512 {
FusedVariantKernels fused_variant_kernels();
}

}  // namespace cpu
}  // namespace lstm_ext
