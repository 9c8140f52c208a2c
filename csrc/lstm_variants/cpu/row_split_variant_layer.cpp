// The whole-row variants' walk split by rows (row_split_variant_layer.h): per step, each thread
// multiplies its rows on the register tile, then runs the row kernels on them, in the plain
// loop's order (lstm_variant_layer.cpp) and on the same buffers.
#include "lstm_variants/cpu/row_split_variant_layer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "lstm_variants/cpu/variant_steps.h"
#include "runtime/cpu/fused_step.h"
#include "runtime/cpu/row_product/row_product.h"

namespace lstm_ext {
namespace cpu {
namespace {

// A weight W [K, cols] (row-major) the walk multiplies rows by, and where it lies packed.
struct RowWeight {
  at::Tensor w;
  float* packed = nullptr;
};

// float32 with layer norm or the lesson's use gate (the other variants run fused_variant_layer.h's
// walk), on the fused step's kernels, with rows enough for every thread.
std::optional<FusedPartition> row_split_applies(const LayerShape& s, const VariantTensors& o, const at::Tensor& like,
                                                bool forward, int64_t flops_per_step) {
  const bool whole_rows = o.ln_hh.has_value() || o.ln_c_weight.has_value() || o.w_u.has_value();
  if (like.scalar_type() != at::kFloat || !whole_rows || !fused_step_applies(s, forward)) return std::nullopt;
  const FusedPartition part = plan_fused_partition(s.B, flops_per_step);
  return part.split_rows ? std::optional<FusedPartition>(part) : std::nullopt;
}

// Packs `weights` (each member its share, then one meeting), then runs walk(r0, r1) on each
// member's rows [r0, r1) of every step.
template <typename Walk>
void run_row_split(const FusedPartition& part, int64_t B, const RowProductKernels& kernels,
                   std::vector<RowWeight*> weights, const at::Tensor& like, const Walk& walk) {
  int64_t floats = 0;
  for (const RowWeight* w : weights) floats += kernels.packed_floats(w->w.size(0), w->w.size(1));
  const at::Tensor packed = at::empty({floats}, like.options());
  float* at = packed.data_ptr<float>();
  for (RowWeight* w : weights) {
    w->packed = at;
    at += kernels.packed_floats(w->w.size(0), w->w.size(1));
  }
  run_fused_team(part.threads, B, 1, [&](int64_t r0, int64_t r1, int64_t owned, StepBarrier& barrier) {
    int64_t generation = 0;
    const bool packed_ok = barrier.step(owned, generation, [&] {
      for (const RowWeight* w : weights) {
        kernels.pack(w->w.const_data_ptr<float>(), w->w.size(0), w->w.size(1), r0, r1, B,
                     w->packed);
      }
    });
    if (packed_ok) barrier.guard([&] { walk(r0, r1); });
  });
}

// rows @ w for `count` rows of a [.., K] into out [.., cols] (+ bias, + out where accumulate).
RowProduct product(const RowWeight& w, const float* rows, const float* bias, bool accumulate, float* out) {
  const int64_t K = w.w.size(0), cols = w.w.size(1);
  return {w.packed, cols, rows, K, K, nullptr, 0, 0, bias, accumulate, out, cols};
}

}  // namespace

bool row_split_variant_forward(const LayerShape& s, bool reverse, const VariantTensors& o, const VariantInput& input,
                               const at::Tensor& w_hh, VariantSaved& f) {
  const int64_t H = s.H, G = 4 * H;
  // x in the tile with W_ih, unless the recurrent product must stay apart (layer norm on it).
  const bool x_in_tile = input.w_ih.defined() && !o.ln_hh.has_value();
  const int64_t K = (x_in_tile ? s.I : 0) + H;
  const int64_t flops = 2 * s.B * (G * K + (o.w_u.has_value() ? H * H : 0));
  const std::optional<RowProductKernels> kernels = row_product_kernels_here();
  const std::optional<FusedPartition> part = row_split_applies(s, o, input.rows, /*forward=*/true, flops);
  if (!kernels || !part) return false;
  // The recurrent product's W: W_hh^T [H, 4H], with x in the tile [W_ih | W_hh]^T [I + H, 4H].
  RowWeight recurrent{x_in_tile ? at::cat({input.w_ih, w_hh}, 1).t().contiguous() : w_hh.t().contiguous()};
  RowWeight use{o.w_u.has_value() ? o.w_u->t().contiguous() : at::Tensor()};  // W_u^T
  std::vector<RowWeight*> weights{&recurrent};
  if (o.w_u.has_value()) weights.push_back(&use);
  const at::Tensor xgates = x_in_tile ? at::Tensor() : input_gates(input).contiguous();
  const float* const x = input.rows.const_data_ptr<float>();
  const float* const bias = x_in_tile && input.bias.defined() ? input.bias.const_data_ptr<float>() : nullptr;
  float* const h = f.h_n.data_ptr<float>();  // every row's h_{t-1}, updated by the row kernel
  const auto rows = variant_row_kernels<float>().forward;

  run_row_split(*part, s.B, *kernels, weights, input.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t k = 0; k < s.T; ++k) {
      const int64_t t = reverse ? s.T - 1 - k : k;
      const int64_t off = s.offset[t], end = std::min(r1, s.rows[t]), count = end - r0;
      if (count <= 0) continue;
      const float* pre = nullptr;
      const float* rec = nullptr;
      if (o.ln_hh.has_value()) {  // h_{t-1} @ W_hh^T alone, normalized by the row kernel
        float* const rec_out = f.rec.data_ptr<float>() + off * G;
        kernels->product(product(recurrent, h + r0 * H, nullptr, false, rec_out + r0 * G), count);
        pre = xgates.const_data_ptr<float>() + off * G;
        rec = rec_out;
      } else {  // the pre-activations, in the saved gates buffer that the row kernel activates
        float* const gates = f.gates.data_ptr<float>() + off * G;
        if (x_in_tile) {
          kernels->product(RowProduct{recurrent.packed, G, x + (off + r0) * s.I, s.I, s.I, h + r0 * H, H, H, bias,
                                      false, gates + r0 * G, G},
                           count);
        } else {
          std::memcpy(gates + r0 * G, xgates.const_data_ptr<float>() + (off + r0) * G, count * G * sizeof(float));
          kernels->product(product(recurrent, h + r0 * H, nullptr, true, gates + r0 * G), count);
        }
        pre = gates;
      }
      VariantForwardStep<float> step = forward_step_at<float>(s, o, f, off, pre, rec);
      rows(step, r0, end);
      if (!o.w_u.has_value()) continue;
      // The lesson's use gate: u_pre = kept @ W_u^T + b_u on the rows' kept, then squash it.
      float* const use_pre = use_pre_at<float>(s, f, off);
      kernels->product(product(use, step.kept + r0 * H, data_or_null<float>(o.b_u), false, use_pre + r0 * H), count);
      step.use_pre = use_pre;
      rows(step, r0, end);
    }
  });
  return true;
}

bool row_split_variant_backward(const LayerShape& s, bool reverse, const VariantTensors& o, const VariantSaved& f,
                                const at::Tensor& carried, const at::Tensor& c0, const at::Tensor& grad_out2d,
                                VariantGrads& g, const at::Tensor& w_hh, bool need_state_grad) {
  const int64_t H = s.H, G = 4 * H;
  const int64_t flops = 2 * s.B * (G * H + (o.w_u.has_value() ? H * H : 0));
  const std::optional<RowProductKernels> kernels = row_product_kernels_here();
  const std::optional<FusedPartition> part = row_split_applies(s, o, f.gates, /*forward=*/false, flops);
  if (!kernels || !part) return false;
  RowWeight recurrent{w_hh};  // dh_{t-1} = drec_t @ W_hh [4H, H]
  RowWeight use{o.w_u.has_value() ? *o.w_u : at::Tensor()};  // d_kept = d_use @ W_u
  std::vector<RowWeight*> weights{&recurrent};
  if (o.w_u.has_value()) weights.push_back(&use);
  float* const dh = g.dh.data_ptr<float>();
  const auto rows = variant_row_kernels<float>().backward;

  run_row_split(*part, s.B, *kernels, weights, f.gates, [&](int64_t r0, int64_t r1) {
    for (int64_t k = s.T - 1; k >= 0; --k) {
      const int64_t t = reverse ? s.T - 1 - k : k;
      const int64_t off = s.offset[t], end = std::min(r1, s.rows[t]), count = end - r0;
      if (count <= 0) continue;
      VariantBackwardStep<float> step =
          backward_step_at<float>(s, t, previous_step(t, s.T, reverse), o, f, carried, c0, grad_out2d, g);
      rows(step, r0, end);
      if (o.w_u.has_value()) {  // the lesson's use gate: back through W_u to kept, then the other gates
        float* const d_kept = g.d_kept.data_ptr<float>();
        kernels->product(product(use, step.d_use + r0 * H, nullptr, false, d_kept + r0 * H), count);
        step.d_kept = d_kept;
        rows(step, r0, end);
      }
      // The last step walked needs no gradient for h0 unless one was asked for. With zoneout on h
      // the row kernel left h_prev's direct share in dh: the product adds to it.
      if (k == 0 && !need_state_grad) continue;
      const float* const drec = g.drec.const_data_ptr<float>() + off * G;  // g.dgates itself without ln_hh
      kernels->product(product(recurrent, drec + r0 * G, nullptr, o.keep_h.has_value(), dh + r0 * H), count);
    }
  });
  return true;
}

}  // namespace cpu
}  // namespace lstm_ext
