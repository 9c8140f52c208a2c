// The LSTM variants (peephole, zoneout, layer norm) over one layer-direction, on the CPU.
//
// The same loop as lstm_layer.cpp, on input gates projected before the loop (one GEMM over all
// steps, or by the caller with layer norm on the input): per step one recurrent GEMM and one fused
// pointwise pass of variant_gates.h; backward per step one pointwise pass and one GEMM, then
// dx, the weight, peephole and layer-norm gain gradients over all steps at once. With layer norm
// on the recurrent projection, the step's GEMM writes a buffer the pointwise pass normalizes.
// This is the plain loop: float32 calls run on the fused step where it applies
// (fused_variant_layer.h, row_split_variant_layer.h), on the same buffers.
#include "lstm_variants/cpu/lstm_variant_layer.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "lstm_variants/cpu/fused_variant_layer.h"
#include "lstm_variants/cpu/lstm_variant_pointwise.h"
#include "lstm_variants/cpu/row_split_variant_layer.h"
#include "lstm_variants/cpu/variant_buffers.h"
#include "lstm_variants/cpu/variant_steps.h"
#include "runtime/cpu/gemm/column_dot.h"
#include "runtime/cpu/gemm/linear.h"
#include "runtime/cpu/grain.h"
#include "runtime/cpu/gemm/recurrent_gemm.h"
#include "runtime/input_projection.h"
#include "runtime/layer_checks.h"
#include "runtime/layer_steps.h"
#include "runtime/transposed_product.h"

namespace lstm_ext {
namespace cpu {
namespace {

using at::Tensor;

void check_tensor(const Tensor& t, c10::IntArrayRef sizes, const Tensor& like, const char* name, const char* op) {
  TORCH_CHECK(t.sizes() == sizes, op, ": expected ", name, " of shape ", sizes, ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == like.scalar_type() && t.device() == like.device(), op, ": expected ", name,
              " of dtype ", like.scalar_type(), " on ", like.device(), " like input, got ", t.scalar_type(), " on ",
              t.device());
}

// With w_ih, the shared checks cover an LSTM layer's arguments. Without it, the input gates take
// the place of the layer's input; their feature size is 4H, and a stand-in w_ih of shape
// [4H, 4H] (a broadcast view, nothing allocated) lets the shared checks cover the layout,
// batch_sizes, h0, c0 and w_hh. The variant tensors are checked here.
LayerShape check_forward(const Tensor& xgates, const std::optional<Tensor>& w_ih, const std::optional<Tensor>& b_ih,
                         const std::optional<Tensor>& b_hh, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                         const std::optional<Tensor>& peephole, const std::optional<Tensor>& zoneout_h,
                         const std::optional<Tensor>& zoneout_c, const std::optional<Tensor>& ln_hh_weight,
                         const std::optional<Tensor>& ln_c_weight, const std::optional<Tensor>& ln_c_bias,
                         const std::optional<Tensor>& w_u, const std::optional<Tensor>& b_u,
                         const std::optional<Tensor>& batch_sizes, const char* op) {
  TORCH_CHECK(xgates.scalar_type() == at::kFloat || xgates.scalar_type() == at::kDouble, op,
              ": the variant kernels run float32 and float64, got ", xgates.scalar_type(),
              "; use backend='reference' for other dtypes");
  LayerShape s;
  if (w_ih.has_value()) {
    s = check_layer_args(op, /*gates=*/4, xgates, h0, &c0, *w_ih, w_hh, b_ih, b_hh, std::nullopt, batch_sizes);
  } else {
    TORCH_CHECK(!b_ih.has_value() && !b_hh.has_value(), op,
                ": b_ih and b_hh need w_ih (without w_ih, input holds the input gates, biases included)");
    const int64_t gate_rows = w_hh.dim() == 2 ? w_hh.size(0) : 0, features = xgates.dim() > 0 ? xgates.size(-1) : 0;
    const Tensor w_ih_stand_in = at::empty({1, 1}, xgates.options()).expand({gate_rows, features});
    s = check_layer_args(op, /*gates=*/4, xgates, h0, &c0, w_ih_stand_in, w_hh, std::nullopt, std::nullopt,
                         std::nullopt, batch_sizes);
    TORCH_CHECK(s.I == 4 * s.H, op, ": expected input gates (no w_ih) with 4 * hidden_size = ", 4 * s.H,
                " features, got ", s.I);
  }
  if (peephole.has_value()) check_tensor(*peephole, {3 * s.H}, xgates, "peephole", op);
  const c10::DimVector out_sizes = s.packed ? c10::DimVector{s.N, s.H} : c10::DimVector{s.T, s.B, s.H};
  if (zoneout_h.has_value()) check_tensor(*zoneout_h, out_sizes, xgates, "zoneout_h", op);
  if (zoneout_c.has_value()) check_tensor(*zoneout_c, out_sizes, xgates, "zoneout_c", op);
  if (ln_hh_weight.has_value()) check_tensor(*ln_hh_weight, {4 * s.H}, xgates, "ln_hh_weight", op);
  TORCH_CHECK(ln_c_weight.has_value() == ln_c_bias.has_value(), op,
              ": expected ln_c_weight and ln_c_bias both or neither");
  if (ln_c_weight.has_value()) check_tensor(*ln_c_weight, {s.H}, xgates, "ln_c_weight", op);
  if (ln_c_bias.has_value()) check_tensor(*ln_c_bias, {s.H}, xgates, "ln_c_bias", op);
  if (w_u.has_value()) {
    check_tensor(*w_u, {s.H, s.H}, xgates, "w_u", op);
    TORCH_CHECK(!ln_hh_weight.has_value() && !ln_c_weight.has_value(), op,
                ": the lesson's use gate (w_u) does not combine with layer norm");
  }
  TORCH_CHECK(!b_u.has_value() || w_u.has_value(), op, ": b_u needs w_u");
  if (b_u.has_value()) check_tensor(*b_u, {s.H}, xgates, "b_u", op);
  return s;
}

std::optional<Tensor> contiguous(const std::optional<Tensor>& t) {
  return t.has_value() ? std::optional<Tensor>(t->contiguous()) : std::nullopt;
}

VariantTensors options(const std::optional<Tensor>& peephole, const std::optional<Tensor>& keep_h,
                       const std::optional<Tensor>& keep_c, const std::optional<Tensor>& ln_hh,
                       const std::optional<Tensor>& ln_c_weight, const std::optional<Tensor>& ln_c_bias,
                       const std::optional<Tensor>& w_u, const std::optional<Tensor>& b_u) {
  return {contiguous(peephole),  contiguous(keep_h),    contiguous(keep_c), contiguous(ln_hh),
          contiguous(ln_c_weight), contiguous(ln_c_bias), contiguous(w_u),    contiguous(b_u)};
}

template <typename scalar_t>
void forward_loop(const LayerShape& s, bool reverse, const VariantTensors& o, const Tensor& xgates, VariantSaved& f,
                  const Tensor& w_hh) {
  const int64_t H = s.H;
  const RecurrentGemm recurrent(w_hh, s.B, s.T);
  const std::optional<RecurrentGemm> lesson =
      o.w_u.has_value() ? std::optional<RecurrentGemm>(std::in_place, *o.w_u, s.B, s.T) : std::nullopt;
  const auto rows = variant_row_kernels<scalar_t>().forward;
  for (int64_t k = 0; k < s.T; ++k) {
    const int64_t t = reverse ? s.T - 1 - k : k;
    const int64_t n = s.rows[t], off = s.offset[t];
    // The pre-activations, written into the saved gates buffer a step at a time (not copied
    // there all at once), so the GEMM and the pointwise pass find them in cache.
    // Small steps run on raw pointers (RecurrentGemm::small_step); result_t holds the tensor
    // path's result where that does not apply.
    const scalar_t* h_p = f.h_n.const_data_ptr<scalar_t>();
    const scalar_t* pre_p = xgates.const_data_ptr<scalar_t>() + off * 4 * H;
    const scalar_t* rec_p = nullptr;  // with ln_hh: h_prev @ W_hh^T, normalized into f.rec by the pointwise pass
    Tensor result_t;
    if (o.ln_hh.has_value()) {
      scalar_t* rec_out = f.rec.data_ptr<scalar_t>() + off * 4 * H;
      rec_p = rec_out;
      if (!recurrent.small_step(h_p, H, n, rec_out, 4 * H, false)) {
        result_t = recurrent.product(f.h_n.narrow(0, 0, n), f.rec.narrow(0, off, n));
        rec_p = result_t.const_data_ptr<scalar_t>();
      }
    } else {
      // memcpy, not copy_: at 4 rows of 64 units copy_'s TensorIterator cost more than the copy.
      scalar_t* gates_p = f.gates.data_ptr<scalar_t>() + off * 4 * H;
      std::memcpy(gates_p, pre_p, n * 4 * H * sizeof(scalar_t));
      pre_p = gates_p;
      if (!recurrent.small_step(h_p, H, n, gates_p, 4 * H, true)) {
        result_t = recurrent.accumulate(f.h_n.narrow(0, 0, n), f.gates.narrow(0, off, n));
        pre_p = result_t.const_data_ptr<scalar_t>();
      }
    }
    const VariantForwardStep<scalar_t> step = forward_step_at<scalar_t>(s, o, f, off, pre_p, rec_p);
    at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(step, begin, end); });
    if (!o.w_u.has_value()) continue;
    // The lesson's use gate: u_pre = kept @ W_u^T + b_u, then squash it.
    scalar_t* u_pre = use_pre_at<scalar_t>(s, f, off);
    const scalar_t* b_u = data_or_null<scalar_t>(o.b_u);
    for (int64_t r = 0; r < n; ++r) {
      if (b_u) std::memcpy(u_pre + r * H, b_u, H * sizeof(scalar_t));
      else std::fill_n(u_pre + r * H, H, scalar_t(0));
    }
    if (!lesson->small_step(f.lesson.const_data_ptr<scalar_t>() + off * H, H, n, u_pre, H, true)) {
      Tensor u_pre_t = f.lesson[1].narrow(0, off, n);
      const Tensor u = lesson->accumulate(f.lesson[0].narrow(0, off, n), u_pre_t);
      if (!u.is_same(u_pre_t)) u_pre_t.copy_(u);
    }
    VariantForwardStep<scalar_t> use_step = step;
    use_step.use_pre = u_pre;
    at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(use_step, begin, end); });
  }
}

template <typename scalar_t>
void backward_loop(const LayerShape& s, bool reverse, const VariantTensors& o, const VariantSaved& f,
                   const Tensor& carried, const Tensor& c0, const Tensor& grad_out2d, VariantGrads& g,
                   const Tensor& w_hh, bool need_state_grad) {
  const int64_t H = s.H;
  const auto rows = variant_row_kernels<scalar_t>().backward;
  const RecurrentGemm recurrent(w_hh.t(), s.B, s.T);  // dh_{t-1} = drec_t @ w_hh (+ zoneout's direct part)
  const std::optional<RecurrentGemm> lesson =  // d_kept = d_use @ w_u
      o.w_u.has_value() ? std::optional<RecurrentGemm>(std::in_place, o.w_u->t(), s.B, s.T) : std::nullopt;
  for (int64_t k = s.T - 1; k >= 0; --k) {
    const int64_t t = reverse ? s.T - 1 - k : k;
    const int64_t n = s.rows[t], off = s.offset[t];
    const int64_t prev = previous_step(t, s.T, reverse);
    const VariantBackwardStep<scalar_t> step =
        backward_step_at<scalar_t>(s, t, prev, o, f, carried, c0, grad_out2d, g);
    at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(step, begin, end); });
    if (o.w_u.has_value()) {  // the lesson's use gate: back through W_u to kept, then the other gates
      if (!lesson->small_step(g.d_use.const_data_ptr<scalar_t>() + off * H, H, n, g.d_kept.data_ptr<scalar_t>(), H,
                              false)) {
        Tensor d_kept = g.d_kept.narrow(0, 0, n);
        lesson->write(g.d_use.narrow(0, off, n), d_kept);
      }
      VariantBackwardStep<scalar_t> gate_step = step;
      gate_step.d_kept = g.d_kept.const_data_ptr<scalar_t>();
      at::parallel_for(0, n, grain_rows(H), [&](int64_t begin, int64_t end) { rows(gate_step, begin, end); });
    }
    // The last step walked needs no gradient for h0 unless one was asked for.
    if (k == 0 && !need_state_grad) continue;
    // With zoneout on h the gate math left h_prev's direct share in dh: add the product to it.
    if (recurrent.small_step(g.drec.const_data_ptr<scalar_t>() + off * 4 * H, 4 * H, n, g.dh.data_ptr<scalar_t>(), H,
                             o.keep_h.has_value())) {
      continue;
    }
    Tensor dh_t = g.dh.narrow(0, 0, n);
    if (o.keep_h.has_value()) {
      const Tensor sum = recurrent.accumulate(g.drec.narrow(0, off, n), dh_t);
      if (!sum.is_same(dh_t)) dh_t.copy_(sum);
    } else {
      recurrent.write(g.drec.narrow(0, off, n), dh_t);
    }
  }
}

Tensor nothing(const Tensor& like) {
  return at::empty({0}, like.options());
}

}  // namespace

VariantLayerResult lstm_variant_layer(const Tensor& input, const std::optional<Tensor>& w_ih,
                                      const std::optional<Tensor>& b_ih, const std::optional<Tensor>& b_hh,
                                      const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                      const std::optional<Tensor>& peephole, const std::optional<Tensor>& zoneout_h,
                                      const std::optional<Tensor>& zoneout_c,
                                      const std::optional<Tensor>& ln_hh_weight,
                                      const std::optional<Tensor>& ln_c_weight,
                                      const std::optional<Tensor>& ln_c_bias, const std::optional<Tensor>& w_u,
                                      const std::optional<Tensor>& b_u, const std::optional<Tensor>& batch_sizes,
                                      bool reverse) {
  const LayerShape s = check_forward(input, w_ih, b_ih, b_hh, h0, c0, w_hh, peephole, zoneout_h, zoneout_c,
                                     ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u, batch_sizes,
                                     "lstm_ext::lstm_variant_layer");
  const VariantTensors o = options(peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u);
  const auto opts = input.options();
  VariantSaved f;
  f.output = at::empty(output_sizes(s), opts);
  f.h_n = h0.clone(at::MemoryFormat::Contiguous);  // the carried states, updated step by step
  f.c_n = c0.clone(at::MemoryFormat::Contiguous);
  // The pre-activations accumulate in the saved gates buffer, then become the activated gates.
  f.gates = at::empty({s.N, 4 * s.H}, opts);
  f.cells = at::empty({s.N, s.H}, opts);
  f.states = o.keep_c.has_value() ? at::empty({s.N, s.H}, opts) : nothing(input);
  f.rec = o.ln_hh.has_value() ? at::empty({s.N, 4 * s.H}, opts) : nothing(input);
  f.stats = o.ln_hh.has_value() || o.ln_c_weight.has_value() ? at::zeros({s.N, kStats}, opts) : nothing(input);
  f.lesson = o.w_u.has_value() ? at::empty({2, s.N, s.H}, opts) : nothing(input);
  VariantInput in{as_rows(input.contiguous(), s.I), w_ih.has_value() ? w_ih->contiguous() : Tensor(), Tensor()};
  if (w_ih.has_value()) {
    in.bias = summed_bias(b_ih, b_hh);
    if (in.bias.defined()) in.bias = in.bias.contiguous();
  }
  const Tensor w_hh_c = w_hh.contiguous();
  const bool fused =
      fused_variant_forward(s, reverse, o, in, w_hh_c, f) || row_split_variant_forward(s, reverse, o, in, w_hh_c, f);
  if (!fused) {
    const Tensor xgates = input_gates(in);
    AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "lstm_ext_variant_forward",
                               [&] { forward_loop<scalar_t>(s, reverse, o, xgates, f, w_hh_c); });
  }
  return {f.output, f.h_n, f.c_n, f.gates, f.cells, f.states, f.rec, f.stats, f.lesson};
}

VariantLayerGrads lstm_variant_layer_backward(const Tensor& grad_output, const Tensor& grad_h_n,
                                              const Tensor& grad_c_n, const Tensor& input,
                                              const std::optional<Tensor>& w_ih, const Tensor& h0, const Tensor& c0,
                                              const Tensor& w_hh, const std::optional<Tensor>& peephole,
                                              const std::optional<Tensor>& zoneout_h,
                                              const std::optional<Tensor>& zoneout_c,
                                              const std::optional<Tensor>& ln_hh_weight,
                                              const std::optional<Tensor>& ln_c_weight,
                                              const std::optional<Tensor>& ln_c_bias,
                                              const std::optional<Tensor>& w_u, const std::optional<Tensor>& b_u,
                                              const std::optional<Tensor>& batch_sizes, bool reverse,
                                              const Tensor& output, const Tensor& gates, const Tensor& cells,
                                              const Tensor& states, const Tensor& rec, const Tensor& stats,
                                              const Tensor& lesson, std::array<bool, 3> output_mask) {
  const char* op = "lstm_ext::lstm_variant_layer_backward";
  // The saved gates stand in for the input gates: same rows, 4H features (dense: viewed as
  // [T, B, 4H]). The input itself is read only for w_ih's gradient.
  TORCH_CHECK(gates.dim() == 2, op, ": expected gates of shape [rows, 4 * hidden_size], got ", gates.sizes());
  const bool dense_view = !batch_sizes.has_value() && output.dim() == 3 && output.size(0) * output.size(1) == gates.size(0);
  const Tensor xgates_like = dense_view ? gates.view({output.size(0), output.size(1), gates.size(1)}) : gates;
  const LayerShape s = check_forward(xgates_like, std::nullopt, std::nullopt, std::nullopt, h0, c0, w_hh, peephole,
                                     zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u,
                                     batch_sizes, op);
  check_tensor(output, output_sizes(s), gates, "output", op);
  check_tensor(grad_output, output_sizes(s), gates, "grad_output", op);
  check_tensor(grad_h_n, {s.B, s.H}, gates, "grad_h_n", op);
  check_tensor(grad_c_n, {s.B, s.H}, gates, "grad_c_n", op);
  check_tensor(cells, {s.N, s.H}, gates, "cells", op);
  // A feature that is off saved the empty placeholder its forward returned; anything else is
  // a saved tensor from another call.
  const auto saved = [&](bool on, const Tensor& t, c10::IntArrayRef sizes, const char* name) {
    check_tensor(t, on ? sizes : c10::IntArrayRef{0}, gates, name, op);
  };
  saved(zoneout_c.has_value(), states, {s.N, s.H}, "states");
  saved(ln_hh_weight.has_value(), rec, {s.N, 4 * s.H}, "rec");
  saved(ln_hh_weight.has_value() || ln_c_weight.has_value(), stats, {s.N, kStats}, "stats");
  saved(w_u.has_value(), lesson, {2, s.N, s.H}, "lesson");
  const auto [need_input, need_state, need_weights] = output_mask;
  int64_t I = 4 * s.H;  // the input's features: the input gates' without w_ih
  if (w_ih.has_value()) {
    TORCH_CHECK(w_ih->dim() == 2 && w_ih->size(0) == 4 * s.H, op, ": expected w_ih of shape [4 * hidden_size, ",
                "input_size], got ", w_ih->sizes());
    I = w_ih->size(1);
    check_tensor(*w_ih, {4 * s.H, I}, gates, "w_ih", op);
    const c10::DimVector input_sizes = s.packed ? c10::DimVector{s.N, I} : c10::DimVector{s.T, s.B, I};
    if (need_weights) check_tensor(input, input_sizes, gates, "input", op);
  } else {
    // The input gates, unused here, or the empty stand-in autograd saves for them (ops.py).
    const bool stand_in = input.dim() == 1 && input.size(0) == 0;
    check_tensor(input, stand_in ? c10::IntArrayRef{0} : xgates_like.sizes(), gates, "input", op);
  }

  const VariantTensors o = options(peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u);
  VariantSaved f;
  f.lesson = lesson.contiguous();
  f.gates = gates.contiguous();
  f.cells = cells.contiguous();
  f.rec = rec.contiguous();
  f.stats = stats.contiguous();
  // The carried cell state of every row: after zoneout when there is one.
  const Tensor carried = zoneout_c.has_value() ? states.contiguous() : f.cells;
  const Tensor c0_c = c0.contiguous();
  VariantGrads g;
  g.dh = grad_h_n.clone(at::MemoryFormat::Contiguous);
  g.dc = grad_c_n.clone(at::MemoryFormat::Contiguous);
  g.dgates = at::empty({s.N, 4 * s.H}, gates.options());
  g.drec = ln_hh_weight.has_value() ? at::empty({s.N, 4 * s.H}, gates.options()) : g.dgates;
  if (ln_c_weight.has_value()) g.dln_c = at::empty({s.N, s.H}, gates.options());
  if (w_u.has_value()) {
    g.d_use = at::empty({s.N, s.H}, gates.options());
    g.d_kept = at::empty({s.B, s.H}, gates.options());
  }
  const Tensor grad_out2d = grad_output.contiguous().view({s.N, s.H}), w_hh_c = w_hh.contiguous();
  if (!fused_variant_backward(s, reverse, o, f, carried, c0_c, grad_out2d, g, w_hh_c, need_state) &&
      !row_split_variant_backward(s, reverse, o, f, carried, c0_c, grad_out2d, g, w_hh_c, need_state)) {
    AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_ext_variant_backward", [&] {
      backward_loop<scalar_t>(s, reverse, o, f, carried, c0_c, grad_out2d, g, w_hh_c, need_state);
    });
  }

  // Masked-out gradients are distinct empty tensors: outputs of an op must not alias.
  VariantLayerGrads grads{nothing(gates), nothing(gates), nothing(gates), nothing(gates),
                          nothing(gates), nothing(gates), nothing(gates), nothing(gates),
                          nothing(gates), nothing(gates), nothing(gates), nothing(gates)};
  auto& [d_input, d_h0, d_c0, d_w_ih, d_w_hh, d_bias, d_peephole, d_ln_hh, d_ln_c_weight, d_ln_c_bias, d_w_u, d_b_u] =
      grads;
  if (need_input) {
    // dx = dgates @ w_ih, as rows @ (w_ih^T)^T on the projection GEMM; or the input gates' gradient
    const c10::DimVector sizes = s.packed ? c10::DimVector{s.N, I} : c10::DimVector{s.T, s.B, I};
    d_input = w_ih.has_value() ? input_projection(g.dgates, w_ih->t(), std::nullopt, std::nullopt).view(sizes)
                               : g.dgates.view(sizes);
  }
  if (need_state) {
    d_h0 = g.dh;
    d_c0 = g.dc;
  }
  if (need_weights) {
    const int64_t H = s.H;
    if (w_ih.has_value()) {
      d_w_ih = transposed_product({{g.dgates, as_rows(input.contiguous(), I)}});
      d_bias = row_sum(g.dgates);
    }
    d_w_hh = recurrent_weight_grad(s, reverse, g.drec, output.contiguous().view({s.N, H}), h0.contiguous());
    if (peephole.has_value()) {
      const Tensor c_prev = previous_hidden(s, reverse, carried, c0_c);
      d_peephole = at::cat({column_dot(g.dgates.narrow(1, 0, H), c_prev),
                            column_dot(g.dgates.narrow(1, H, H), c_prev),
                            column_dot(g.dgates.narrow(1, 3 * H, H), f.cells)});
    }
    if (ln_hh_weight.has_value()) d_ln_hh = column_dot(g.dgates, f.rec);
    if (ln_c_weight.has_value()) {
      // against c_hat = (c - mean) * rstd, the statistics of each row
      d_ln_c_weight = column_dot(g.dln_c, f.cells, f.stats.select(1, 1), f.stats.select(1, 2));
      d_ln_c_bias = g.dln_c.sum(0);
    }
    if (w_u.has_value()) {
      d_w_u = transposed_product({{g.d_use, f.lesson[0]}});
      if (b_u.has_value()) d_b_u = g.d_use.sum(0);
    }
  }
  return grads;
}

}  // namespace cpu
}  // namespace lstm_ext
