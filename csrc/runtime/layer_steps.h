// Host-side bookkeeping of a layer's time loop, shared by every recurrent layer kernel:
// which step came before, how many of its rows carry over, and every row's previous h.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>

#include "runtime/layer_checks.h"
#include "runtime/transposed_product.h"

namespace lstm_ext {

// The step processed just before step t (walking in the direction of the layer), or -1.
inline int64_t previous_step(int64_t t, int64_t T, bool reverse) {
  const int64_t prev = reverse ? t + 1 : t - 1;
  return (prev < 0 || prev >= T) ? -1 : prev;
}

// Calls step(k, t, n, off) for every step with rows, in the order a forward walk takes them:
// k counts the steps walked (0 first), t is the step's place in the sequence, n its rows and off
// the first of them in input / output.
template <typename Step>
inline void walk_forward(const LayerShape& s, bool reverse, const Step& step) {
  for (int64_t k = 0; k < s.T; ++k) {
    const int64_t t = reverse ? s.T - 1 - k : k;
    if (s.rows[t] > 0) step(k, t, s.rows[t], s.offset[t]);
  }
}

// The same steps in the order a backward walk takes them: the forward walk's last first.
template <typename Step>
inline void walk_backward(const LayerShape& s, bool reverse, const Step& step) {
  for (int64_t k = s.T - 1; k >= 0; --k) {
    const int64_t t = reverse ? s.T - 1 - k : k;
    if (s.rows[t] > 0) step(k, t, s.rows[t], s.offset[t]);
  }
}

// Rows of step t whose previous state comes from step prev; the rest start from h0/c0.
// Forward walks keep shrinking prefixes, so every row has one. Reverse walks over packed
// input grow, and the new rows are sequences whose last element is at step t.
inline int64_t rows_with_previous(const LayerShape& s, int64_t t, int64_t prev) {
  return prev < 0 ? 0 : std::min(s.rows[t], s.rows[prev]);
}

// h_{t-1} of every row of every step, laid out like the input, for dW_hh as one GEMM.
inline at::Tensor previous_hidden(const LayerShape& s, bool reverse, const at::Tensor& out2d, const at::Tensor& h0) {
  at::Tensor h_prev = at::empty({s.N, s.P}, out2d.options());
  if (!s.packed && s.T > 0) {
    // Dense: the whole output shifted by one step, h0 in the gap. Two copies, not 2T.
    const int64_t shifted = s.N - s.B;
    h_prev.narrow(0, reverse ? 0 : s.B, shifted).copy_(out2d.narrow(0, reverse ? s.B : 0, shifted));
    h_prev.narrow(0, reverse ? shifted : 0, s.B).copy_(h0);
    return h_prev;
  }
  for (int64_t t = 0; t < s.T; ++t) {
    const int64_t n = s.rows[t], off = s.offset[t];
    const int64_t prev = previous_step(t, s.T, reverse);
    const int64_t n_prev = rows_with_previous(s, t, prev);
    if (n_prev > 0) h_prev.narrow(0, off, n_prev).copy_(out2d.narrow(0, s.offset[prev], n_prev));
    if (n > n_prev) h_prev.narrow(0, off + n_prev, n - n_prev).copy_(h0.narrow(0, n_prev, n - n_prev));
  }
  return h_prev;
}

// The sum of d's rows in the op-math dtype, returned in d's dtype: a bias gradient. On the CPU,
// sum(dtype=float) of bfloat16 first converts the whole tensor (26 MB at T100 B64 H256, on the
// training peak), so reduced precision is summed a block of rows at a time.
inline at::Tensor row_sum(const at::Tensor& d) {
  const at::ScalarType opmath = opmath_dtype(d.scalar_type());
  if (opmath == d.scalar_type() || !d.is_cpu()) return d.sum(0, /*keepdim=*/false, opmath).to(d.scalar_type());
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, d.size(1)));
  at::Tensor sum = at::zeros({d.size(1)}, d.options().dtype(opmath));
  for (int64_t r = 0; r < d.size(0); r += block) {
    sum.add_(d.narrow(0, r, std::min(block, d.size(0) - r)).sum(0, /*keepdim=*/false, opmath));
  }
  return sum.to(d.scalar_type());
}

// dW_hh = d^T h_prev, d [N, G] the gate gradients of every row. Dense input in the op-math dtype
// needs no [N, P] copy of h_prev: apart from the first step walked (whose h_prev is h0), it is
// the output shifted by one step, so one product of two terms on views does. Reduced precision
// keeps the copy and one term, so the result is rounded once.
inline at::Tensor recurrent_weight_grad(const LayerShape& s, bool reverse, const at::Tensor& d, const at::Tensor& out2d,
                                        const at::Tensor& h0) {
  if (s.packed || s.T == 0 || d.scalar_type() != opmath_dtype(d.scalar_type())) {
    return transposed_product({{d, previous_hidden(s, reverse, out2d, h0)}});
  }
  const int64_t shifted = s.N - s.B;
  return transposed_product({{d.narrow(0, reverse ? shifted : 0, s.B), h0},
                             {d.narrow(0, reverse ? 0 : s.B, shifted), out2d.narrow(0, reverse ? s.B : 0, shifted)}});
}

}  // namespace lstm_ext
