// The tensors of one variant layer call on the CPU, shared by its plain loop
// (lstm_variant_layer.cpp) and its fused step (fused_variant_layer.cpp), which fill and read
// them alike, so either backward reads either forward.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace lstm_ext {
namespace cpu {

// The optional tensors of the variants, contiguous.
struct VariantTensors {
  std::optional<at::Tensor> peephole, keep_h, keep_c, ln_hh, ln_c_weight, ln_c_bias, w_u, b_u;
};

// t's data, or null where the option is off.
template <typename scalar_t>
const scalar_t* data_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->const_data_ptr<scalar_t>() : nullptr;
}

// The input of one call, as rows of every step: the layer's x [N, I] with w_ih [4H, I] and the
// summed bias b_ih + b_hh [4H] (undefined: none); or, where w_ih is undefined, the input gates
// [N, 4H] made beforehand (layer norm on the input projection), biases included.
struct VariantInput {
  at::Tensor rows;
  at::Tensor w_ih;
  at::Tensor bias;
};

// What forward saves: (output, h_n, c_n, gates, cells, states, rec, stats, lesson).
struct VariantSaved {
  at::Tensor output, h_n, c_n;
  at::Tensor gates;   // [N, 4H] activated gates
  at::Tensor cells;   // [N, H] c before zoneout
  at::Tensor states;  // [N, H] c after zoneout, or empty without zoneout on c
  at::Tensor rec;     // [N, 4H] normalized h_prev @ W_hh^T, or empty without ln_hh
  at::Tensor stats;   // [N, kStats], or empty without layer norm
  at::Tensor lesson;  // [2, N, H]: kept = c_prev * f and u_pre = kept @ W_u^T + b_u, or empty
};

// Gradient buffers of backward.
struct VariantGrads {
  at::Tensor dh, dc;  // [B, H] running gradients of the carried h and c
  at::Tensor dgates;  // [N, 4H] of the pre-activations (= of xgates)
  at::Tensor drec;    // [N, 4H] of h_prev @ W_hh^T: dgates itself without ln_hh
  at::Tensor dln_c;   // [N, H] reaching LN(c), with ln_c
  at::Tensor d_use;   // [N, H] of u_pre, with the lesson's use gate
  at::Tensor d_kept;  // [B, H] of kept through W_u, one step at a time
};

}  // namespace cpu
}  // namespace lstm_ext
