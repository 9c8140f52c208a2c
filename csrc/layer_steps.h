// Host-side bookkeeping of a layer's time loop, shared by every recurrent layer kernel:
// which step came before, how many of its rows carry over, and every row's previous h.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>

#include "lstm_args.h"

namespace lstm_ext {

// The step processed just before step t (walking in the direction of the layer), or -1.
inline int64_t previous_step(int64_t t, int64_t T, bool reverse) {
  const int64_t prev = reverse ? t + 1 : t - 1;
  return (prev < 0 || prev >= T) ? -1 : prev;
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

}  // namespace lstm_ext
