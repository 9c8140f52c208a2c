// One step's arguments for the variants' row kernels (lstm_variant_pointwise.h), on one call's
// buffers (variant_buffers.h): the plain loop (lstm_variant_layer.cpp) and the row-split fused
// walk (row_variant_layer.cpp) build them alike.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

#include "lstm_variants/cpu/lstm_variant_pointwise.h"
#include "lstm_variants/cpu/variant_buffers.h"
#include "runtime/cpu/gemm/linear.h"
#include "runtime/layer_checks.h"
#include "runtime/layer_steps.h"

namespace lstm_ext {
namespace cpu {

// The input gates of every step where a loop needs them made beforehand: input.rows themselves, or
// x @ w_ih^T + bias on the layer kernels' projection GEMM (lstm_ext::linear's kernel, empty
// products included).
inline at::Tensor input_gates(const VariantInput& input) {
  if (!input.w_ih.defined()) return input.rows;
  return cpu::linear(input.rows, input.w_ih,
                     input.bias.defined() ? std::optional<at::Tensor>(input.bias) : std::nullopt);
}

template <typename scalar_t>
const scalar_t* rows_or_null(const std::optional<at::Tensor>& t, int64_t offset, int64_t H) {
  return t.has_value() ? t->const_data_ptr<scalar_t>() + offset * H : nullptr;
}

// The options' pointers for the step whose rows start at `offset`.
template <typename scalar_t>
VariantOptions<scalar_t> step_options(const VariantTensors& o, int64_t offset, int64_t H) {
  return {data_or_null<scalar_t>(o.peephole), rows_or_null<scalar_t>(o.keep_h, offset, H),
          rows_or_null<scalar_t>(o.keep_c, offset, H), data_or_null<scalar_t>(o.ln_hh),
          data_or_null<scalar_t>(o.ln_c_weight), data_or_null<scalar_t>(o.ln_c_bias)};
}

// The forward of the step whose rows start at `off` (s.N rows in all): pre, its pre-activations
// ([rows, 4H]; with ln_hh the input gates alone); with ln_hh, rec_in: where h_prev @ W_hh^T is.
// The lesson's first pass (use_pre null).
template <typename scalar_t>
VariantForwardStep<scalar_t> forward_step_at(const LayerShape& s, const VariantTensors& o, VariantSaved& f,
                                             int64_t off, const scalar_t* pre, const scalar_t* rec_in) {
  const int64_t H = s.H;
  return {
      H,
      pre,
      step_options<scalar_t>(o, off, H),
      o.ln_hh.has_value() ? f.rec.data_ptr<scalar_t>() + off * 4 * H : nullptr,
      f.stats.numel() ? f.stats.data_ptr<scalar_t>() + off * kStats : nullptr,
      o.w_u.has_value() ? f.lesson.data_ptr<scalar_t>() + off * H : nullptr,
      nullptr,
      f.gates.data_ptr<scalar_t>() + off * 4 * H,
      f.cells.data_ptr<scalar_t>() + off * H,
      o.keep_c.has_value() ? f.states.data_ptr<scalar_t>() + off * H : nullptr,
      f.c_n.data_ptr<scalar_t>(),
      f.h_n.data_ptr<scalar_t>(),
      f.output.data_ptr<scalar_t>() + off * H,
      rec_in,
  };
}

// Where the lesson's u_pre = kept @ W_u^T + b_u of the step at `off` goes: f.lesson[1]'s rows.
template <typename scalar_t>
scalar_t* use_pre_at(const LayerShape& s, VariantSaved& f, int64_t off) {
  return f.lesson.data_ptr<scalar_t>() + (s.N + off) * s.H;
}

// The backward of step t, prev the step before it in the forward walk (-1: none); the lesson's
// first pass (d_kept null). carried: [N, H] the cell state each step passed on.
template <typename scalar_t>
VariantBackwardStep<scalar_t> backward_step_at(const LayerShape& s, int64_t t, int64_t prev, const VariantTensors& o,
                                               const VariantSaved& f, const at::Tensor& carried, const at::Tensor& c0,
                                               const at::Tensor& grad_out2d, VariantGrads& g) {
  const int64_t H = s.H, off = s.offset[t];
  return {
      H,
      f.gates.const_data_ptr<scalar_t>() + off * 4 * H,
      f.cells.const_data_ptr<scalar_t>() + off * H,
      prev < 0 ? nullptr : carried.const_data_ptr<scalar_t>() + s.offset[prev] * H,
      c0.const_data_ptr<scalar_t>(),
      rows_with_previous(s, t, prev),
      step_options<scalar_t>(o, off, H),
      o.ln_hh.has_value() ? f.rec.const_data_ptr<scalar_t>() + off * 4 * H : nullptr,
      f.stats.numel() ? f.stats.const_data_ptr<scalar_t>() + off * kStats : nullptr,
      // f.lesson[1]'s rows, without a select per step (a tensor view costs more than it saves)
      o.w_u.has_value() ? f.lesson.const_data_ptr<scalar_t>() + (s.N + off) * H : nullptr,
      o.w_u.has_value() ? g.d_use.data_ptr<scalar_t>() + off * H : nullptr,
      nullptr,
      g.dh.data_ptr<scalar_t>(),
      grad_out2d.const_data_ptr<scalar_t>() + off * H,
      g.dc.data_ptr<scalar_t>(),
      g.dgates.data_ptr<scalar_t>() + off * 4 * H,
      o.ln_c_weight.has_value() ? g.dln_c.data_ptr<scalar_t>() + off * H : nullptr,
      o.ln_hh.has_value() ? g.drec.data_ptr<scalar_t>() + off * 4 * H : nullptr,
  };
}

}  // namespace cpu
}  // namespace lstm_ext
