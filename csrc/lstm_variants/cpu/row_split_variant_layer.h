// The LSTM variants whose step needs whole rows on the fused step's tile: layer norm (the
// statistics of a row's recurrent projection and of its new cell state) and the lesson's use gate
// (a second product over every unit of a row). fused_variant_layer.h's walk splits units across
// threads and finishes each unit on its tile, which these cannot; this walk splits the batch
// instead. Each thread owns rows for the whole sequence, multiplies them on the register tile
// (runtime/cpu/row_product/row_product.h) and runs the plain loop's row kernels on them
// (lstm_variant_pointwise.h), so the threads never meet inside the walk and no ATen op runs in it.
// It applies where the batch has enough rows for every thread (runtime/cpu/fused_step.h's
// partition splits rows); elsewhere, and while LSTM_EXT_FUSED_STEP=0, the plain loop runs
// (lstm_variant_layer.cpp). Both fill and read the same saved tensors (variant_buffers.h).
#pragma once

#include <ATen/core/Tensor.h>

#include "lstm_variants/cpu/variant_buffers.h"
#include "runtime/layer_checks.h"

namespace lstm_ext {
namespace cpu {

// The forward where it applies: fills f as the plain loop does and returns true; false: it does
// not apply, and nothing was written.
bool row_split_variant_forward(const LayerShape& s, bool reverse, const VariantTensors& o, const VariantInput& input,
                               const at::Tensor& w_hh, VariantSaved& f);

// The backward's time loop where it applies: fills g as the plain loop does (g.dh and g.dc end as
// the gradients of h0 and c0 where need_state_grad) and returns true; false: it does not apply.
// carried: [N, H] the cell state each step passed on (after zoneout).
bool row_split_variant_backward(const LayerShape& s, bool reverse, const VariantTensors& o, const VariantSaved& f,
                                const at::Tensor& carried, const at::Tensor& c0, const at::Tensor& grad_out2d,
                                VariantGrads& g, const at::Tensor& w_hh, bool need_state_grad);

}  // namespace cpu
}  // namespace lstm_ext
