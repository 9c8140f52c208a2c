// The LSTM variants' fused step (fused_variant_layer.h) where it applies, on the buffers the
// plain loop fills (variant_buffers.h).
#include "lstm_variants/cpu/fused_variant_layer.h"

#include <ATen/ATen.h>

#include "lstm_variants/cpu/variant_steps.h"

namespace lstm_ext {
namespace cpu {
namespace {

std::optional<FusedVariantKernels> fused_kernels_here() {
  return LSTM_EXT_FUSED_KERNELS_HERE(fused_variant_kernels);
}

// float32, with neither layer norm nor the lesson's use gate (those run row_split_variant_layer.h's walk).
bool fused_applies(const LayerShape& s, const VariantTensors& o, const at::Tensor& like, bool forward) {
  return like.scalar_type() == at::kFloat && !o.ln_hh.has_value() && !o.ln_c_weight.has_value() &&
         !o.w_u.has_value() && fused_step_applies(s, forward);
}

FusedVariantOptions fused_options(const VariantTensors& o) {
  return {data_or_null<float>(o.peephole), data_or_null<float>(o.keep_h), data_or_null<float>(o.keep_c)};
}

}  // namespace

bool fused_variant_forward(const LayerShape& s, bool reverse, const VariantTensors& o, const VariantInput& input,
                           const at::Tensor& w_hh, VariantSaved& f) {
  const std::optional<FusedVariantKernels> kernel = fused_kernels_here();
  if (!kernel || !fused_applies(s, o, input.rows, /*forward=*/true)) return false;
  // Input gates made beforehand (by the caller, or here with a row or two: fused_input_first) are
  // added by the epilogue: the tile's input segment is empty.
  const bool gates_given = !input.w_ih.defined() || fused_input_first(s);
  const at::Tensor xgates = gates_given ? input_gates(input).contiguous() : at::Tensor();
  LayerShape walk_shape = s;
  if (gates_given) walk_shape.I = 0;
  const at::Tensor packed = at::empty({kernel->forward_packed_floats(walk_shape.I, s.H)}, input.rows.options());
  const float* const rows = (gates_given ? xgates : input.rows).const_data_ptr<float>();
  float* const out = f.output.data_ptr<float>();
  kernel->forward(FusedVariantForward{
      FusedWalk{&walk_shape, reverse, rows, gates_given ? nullptr : input.w_ih.const_data_ptr<float>(),
                w_hh.const_data_ptr<float>(), input.bias.defined() ? input.bias.const_data_ptr<float>() : nullptr,
                f.h_n.const_data_ptr<float>(),  // h0 until the walk is over
                out, packed.data_ptr<float>()},
      gates_given ? rows : nullptr,
      fused_options(o),
      f.c_n.data_ptr<float>(),
      f.gates.data_ptr<float>(),
      f.cells.data_ptr<float>(),
      o.keep_c.has_value() ? f.states.data_ptr<float>() : nullptr,
  });
  copy_final_hidden(s, reverse, out, f.h_n.data_ptr<float>());
  return true;
}

bool fused_variant_backward(const LayerShape& s, bool reverse, const VariantTensors& o, const VariantSaved& f,
                            const at::Tensor& carried, const at::Tensor& c0, const at::Tensor& grad_out2d,
                            VariantGrads& g, const at::Tensor& w_hh, bool need_state_grad) {
  const std::optional<FusedVariantKernels> kernel = fused_kernels_here();
  if (!kernel || !fused_applies(s, o, f.gates, /*forward=*/false)) return false;
  const at::Tensor packed = at::empty({kernel->backward_packed_floats(s.H)}, f.gates.options());
  const at::Tensor dh_direct = o.keep_h.has_value() ? at::zeros({s.B, s.H}, f.gates.options()) : at::Tensor();
  kernel->backward(FusedVariantBackward{
      FusedBackwardWalk{&s, reverse, w_hh.const_data_ptr<float>(), g.dgates.data_ptr<float>(),
                        /*dgates_last=*/nullptr, g.dh.data_ptr<float>(), need_state_grad, packed.data_ptr<float>(),
                        dh_direct.defined() ? dh_direct.data_ptr<float>() : nullptr},
      fused_options(o),
      f.gates.const_data_ptr<float>(),
      f.cells.const_data_ptr<float>(),
      carried.const_data_ptr<float>(),
      c0.const_data_ptr<float>(),
      grad_out2d.const_data_ptr<float>(),
      g.dc.data_ptr<float>(),
  });
  return true;
}

}  // namespace cpu
}  // namespace lstm_ext
