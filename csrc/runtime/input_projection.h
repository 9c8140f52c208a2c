// The input projection before a layer's time loop, and its parts: rows @ w_ih^T + b_ih + b_hh
// for every step at once, as one GEMM with the bias folded in. Plain ATen, for every backend;
// the CPU's faster path over it is runtime/cpu/gemm/recurrent_gemm.h's input_projection.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/accumulate.h>

#include <optional>

namespace lstm_ext {

// t viewed (or copied, when it must be) as rows of `cols` features: [T, B, cols] -> [T * B, cols].
// The row count comes from t's leading sizes: -1 would be ambiguous for an empty t with cols = 0.
inline at::Tensor as_rows(const at::Tensor& t, int64_t cols) {
  TORCH_INTERNAL_ASSERT(t.dim() >= 1 && t.size(-1) == cols);
  return t.reshape({c10::multiply_integers(t.sizes().begin(), t.sizes().end() - 1), cols});
}

// rows @ w_ih^T + b_ih + b_hh, a new contiguous [rows, G*H] tensor. A backend may pass its own,
// e.g. the CPU's on a packed weight; the default is one ATen GEMM, the bias folded in.
using InputProjection = at::Tensor (*)(const at::Tensor& rows, const at::Tensor& w_ih,
                                       const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh);

// b_ih + b_hh, or the one that is there; undefined without either.
inline at::Tensor summed_bias(const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh) {
  if (b_ih.has_value() && b_hh.has_value()) return *b_ih + *b_hh;
  if (b_ih.has_value()) return *b_ih;
  return b_hh.has_value() ? *b_hh : at::Tensor();
}

inline at::Tensor aten_input_projection(const at::Tensor& rows, const at::Tensor& w_ih,
                                        const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh) {
  const at::Tensor w_ih_t = w_ih.contiguous().t();
  const at::Tensor bias = summed_bias(b_ih, b_hh);
  // The out= forms: autocast casts the functional at::addmm / at::mm, and the kernel runs in
  // the caller's dtype whatever autocast region it is called from.
  at::Tensor out = at::empty({rows.size(0), w_ih.size(0)}, rows.options());
  return bias.defined() ? at::addmm_out(out, bias, rows, w_ih_t) : at::mm_out(out, rows, w_ih_t);
}

}  // namespace lstm_ext
