// The variant row kernels, included once per CPU capability by lstm_variant_pointwise_*.cpp
// (each defines CPU_CAPABILITY first). variant_gates.h runs on whole SIMD vectors, with a
// partial vector for the tail (runtime/cpu/simd.h). A row is walked once without layer norm;
// with it, the row sums come between the passes.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>

#include "lstm_variants/cpu/lstm_variant_pointwise.h"
#include "lstm_variants/variant_gates.h"
#include "runtime/cpu/simd.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

template <typename scalar_t>
inline scalar_t sum_lanes(const at::vec::Vectorized<scalar_t>& v) {
  scalar_t lanes[at::vec::Vectorized<scalar_t>::size()];
  v.store(lanes);
  scalar_t sum = 0;
  for (const scalar_t x : lanes) sum += x;
  return sum;
}

// Mean and 1/std of a row of n values: two passes (no cancellation), each summed in double
// whatever the storage, in 8 running sums the compiler keeps in vector registers. float32 sums
// drifted a float32 layer-normalized stack twice as far from the float64 truth as torch's
// layer_norm (tests/test_variants_modules.py, "fused_matches_reference").
template <typename scalar_t>
inline void row_moments(const scalar_t* x, int64_t n, scalar_t* mean, scalar_t* rstd) {
  constexpr int kSums = 8;
  const auto sum_of = [&](auto&& term) {
    double sums[kSums] = {};
    int64_t i = 0;
    for (; i + kSums <= n; i += kSums) {
      for (int j = 0; j < kSums; ++j) sums[j] += term(static_cast<double>(x[i + j]));
    }
    double total = 0;
    for (; i < n; ++i) total += term(static_cast<double>(x[i]));
    for (const double s : sums) total += s;
    return total;
  };
  const double m = sum_of([](double v) { return v; }) / static_cast<double>(n);
  const double var = sum_of([m](double v) { return (v - m) * (v - m); }) / static_cast<double>(n);
  *mean = static_cast<scalar_t>(m);
  *rstd = static_cast<scalar_t>(1.0 / std::sqrt(var + kLayerNormEps));
}

// LayerNorm backward of one row, without the gain's and bias' own gradients:
// dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * gain.
// xhat(l) and dy(l) give the lanes of l; dx is written through store(l, value).
template <typename scalar_t, typename XHat, typename DY, typename Store>
inline void layer_norm_row_backward(int64_t n, scalar_t rstd, const scalar_t* gain, XHat xhat, DY dy, Store store) {
  using V = at::vec::Vectorized<scalar_t>;
  V s1(scalar_t(0)), s2(scalar_t(0));
  for_lanes<scalar_t>(n, [&](const Lanes<scalar_t>& l) {
    const V dxhat = dy(l) * l.load(gain);
    s1 = s1 + dxhat;
    s2 = s2 + l.masked(dxhat * xhat(l));
  });
  const V mean1(sum_lanes(s1) / scalar_t(n)), mean2(sum_lanes(s2) / scalar_t(n));
  for_lanes<scalar_t>(n, [&](const Lanes<scalar_t>& l) {
    store(l, V(rstd) * (dy(l) * l.load(gain) - mean1 - xhat(l) * mean2));
  });
}

// The option tensors' lanes for row r; zeros where the option is off.
template <typename scalar_t>
inline variant_gates::Peephole<at::vec::Vectorized<scalar_t>> peephole_lanes(const Lanes<scalar_t>& l,
                                                                             const VariantOptions<scalar_t>& o,
                                                                             int64_t H) {
  const scalar_t* p = o.peephole;
  return {l.load_or_zero(p), l.load_or_zero(p ? p + H : nullptr), l.load_or_zero(p ? p + 2 * H : nullptr)};
}

template <typename scalar_t>
inline variant_gates::Keep<at::vec::Vectorized<scalar_t>> keep_lanes(const Lanes<scalar_t>& l,
                                                                     const VariantOptions<scalar_t>& o, int64_t r,
                                                                     int64_t H) {
  return {l.load_or_zero(o.keep_h ? o.keep_h + r * H : nullptr), l.load_or_zero(o.keep_c ? o.keep_c + r * H : nullptr)};
}

// Row r of a forward step.
template <typename scalar_t>
void forward_row(const VariantForwardStep<scalar_t>& s, int64_t r) {
  using V = at::vec::Vectorized<scalar_t>;
  const int64_t H = s.H;
  const scalar_t* pre = s.pre + r * 4 * H;
  scalar_t* g_row = s.gates + r * 4 * H;
  scalar_t* c_row = s.c_state + r * H;
  scalar_t* h_row = s.h_state + r * H;
  const auto keep = [&](const Lanes<scalar_t>& l) { return keep_lanes(l, s.options, r, H); };
  const auto finish = [&](const Lanes<scalar_t>& l, const variant_gates::Cell<V>& cell, const V& long_term) {
    const auto next = variant_gates::cell_output(cell, long_term, l.load(c_row), l.load(h_row), keep(l));
    if (s.states) l.store(s.states + r * H, next.c);
    l.store(c_row, next.c);
    l.store(h_row, next.h);
    l.store(s.out + r * H, next.h);
  };
  // The use gate on what was saved: the lesson's second pass, or layer norm's on c.
  const auto finish_saved = [&](const Lanes<scalar_t>& l, const V& long_term) {
    variant_gates::Cell<V> cell;
    cell.a.o = l.load(g_row + 3 * H);
    cell.c = l.load(s.cells + r * H);
    finish(l, cell, long_term);
  };
  if (s.use_pre) {
    for_lanes<scalar_t>(H, [&](const Lanes<scalar_t>& l) { finish_saved(l, l.load(s.use_pre + r * H)); });
    return;
  }
  if (s.options.ln_hh) {  // pre += ln_hh * normalize(h_prev @ W_hh^T), the bias already in pre
    scalar_t* rec = s.rec + r * 4 * H;
    const scalar_t* raw = s.rec_in ? s.rec_in + r * 4 * H : rec;
    scalar_t mean, rstd;
    row_moments(raw, 4 * H, &mean, &rstd);
    for_lanes<scalar_t>(4 * H, [&](const Lanes<scalar_t>& l) {
      const V xhat = (l.load(raw) - V(mean)) * V(rstd);
      l.store(rec, xhat);
      l.store(g_row, l.load(pre) + l.load(s.options.ln_hh) * xhat);
    });
    s.stats[r * kStats] = rstd;
    pre = g_row;
  }
  for_lanes<scalar_t>(H, [&](const Lanes<scalar_t>& l) {
    const auto cell = variant_gates::cell_gates<V>(l.load(pre), l.load(pre + H), l.load(pre + 2 * H),
                                                   l.load(pre + 3 * H), l.load(c_row), peephole_lanes(l, s.options, H));
    l.store(g_row, cell.a.i);
    l.store(g_row + H, cell.a.f);
    l.store(g_row + 2 * H, cell.a.g);
    l.store(g_row + 3 * H, cell.a.o);
    l.store(s.cells + r * H, cell.c);
    if (s.kept) l.store(s.kept + r * H, gates::forget_gate(cell.a, l.load(c_row)));
    if (!s.options.ln_c_weight && !s.kept) finish(l, cell, cell.c);
  });
  if (!s.options.ln_c_weight) return;
  // The use gate squashes LN(c); c itself is carried.
  scalar_t mean, rstd;
  row_moments(s.cells + r * H, H, &mean, &rstd);
  s.stats[r * kStats + 1] = mean;
  s.stats[r * kStats + 2] = rstd;
  for_lanes<scalar_t>(H, [&](const Lanes<scalar_t>& l) {
    const V c_hat = (l.load(s.cells + r * H) - V(mean)) * V(rstd);
    finish_saved(l, c_hat * l.load(s.options.ln_c_weight) + l.load(s.options.ln_c_bias));
  });
}

// Row r of a backward step.
template <typename scalar_t>
void backward_row(const VariantBackwardStep<scalar_t>& s, int64_t r) {
  using V = at::vec::Vectorized<scalar_t>;
  const int64_t H = s.H;
  const scalar_t* g_row = s.gates + r * 4 * H;
  const scalar_t* cells = s.cells + r * H;
  const scalar_t* c_prev_row = r < s.n_prev ? s.c_prev + r * H : s.c0 + r * H;
  scalar_t* dh_row = s.dh + r * H;
  scalar_t* dc_row = s.dc + r * H;
  scalar_t* dg_row = s.dgates + r * 4 * H;
  const auto gates_of = [&](const Lanes<scalar_t>& l) {
    return gates::Gates<V>{l.load(g_row), l.load(g_row + H), l.load(g_row + 2 * H), l.load(g_row + 3 * H)};
  };
  const auto peephole = [&](const Lanes<scalar_t>& l) { return peephole_lanes(l, s.options, H); };
  const auto keep = [&](const Lanes<scalar_t>& l) { return keep_lanes(l, s.options, r, H); };
  const auto store_grads = [&](const Lanes<scalar_t>& l, const gates::GateGrads<V>& d) {
    l.store(dg_row, d.i_pre);
    l.store(dg_row + H, d.f_pre);
    l.store(dg_row + 2 * H, d.g_pre);
    l.store(dg_row + 3 * H, d.o_pre);
    l.store(dc_row, d.c_prev);
  };
  if (s.use_pre && !s.d_kept) {  // the lesson's first pass: the use gate on u_pre
    for_lanes<scalar_t>(H, [&](const Lanes<scalar_t>& l) {
      gates::GateGrads<V> d;
      V dh_prev;
      l.store(s.d_use + r * H,
              variant_gates::use_backward<V>(gates_of(l), gates::tanh_(l.load(s.use_pre + r * H)), keep(l),
                                             l.load(dh_row) + l.load(s.dy + r * H), &d, &dh_prev));
      l.store(dg_row + 3 * H, d.o_pre);
      if (s.options.keep_h) l.store(dh_row, dh_prev);
    });
  } else if (s.use_pre) {  // the lesson's second pass: c reaches h only through kept
    for_lanes<scalar_t>(H, [&](const Lanes<scalar_t>& l) {
      gates::GateGrads<V> d;
      d.o_pre = l.load(dg_row + 3 * H);
      variant_gates::remember_backward<V>(gates_of(l), l.load(c_prev_row), peephole(l), keep(l), V(scalar_t(0)),
                                          l.load(dc_row), l.load(s.d_kept + r * H), &d);
      store_grads(l, d);
    });
  } else if (!s.options.ln_c_weight) {
    for_lanes<scalar_t>(H, [&](const Lanes<scalar_t>& l) {
      V dh_prev;
      const auto d = variant_gates::cell_backward<V>(gates_of(l), l.load(cells), l.load(c_prev_row), peephole(l),
                                                     keep(l), l.load(dh_row) + l.load(s.dy + r * H),
                                                     l.load(dc_row), &dh_prev);
      store_grads(l, d);
      if (s.options.keep_h) l.store(dh_row, dh_prev);
    });
  } else {
    const scalar_t mean = s.stats[r * kStats + 1], rstd = s.stats[r * kStats + 2];
    const auto c_hat = [&](const Lanes<scalar_t>& l) { return (l.load(cells) - V(mean)) * V(rstd); };
    scalar_t* dln_row = s.dln_c + r * H;
    // use gate on LN(c): o's gradient, and the gradient reaching LN(c)
    for_lanes<scalar_t>(H, [&](const Lanes<scalar_t>& l) {
      const V normed = c_hat(l) * l.load(s.options.ln_c_weight) + l.load(s.options.ln_c_bias);
      gates::GateGrads<V> d;
      V dh_prev;
      l.store(dln_row, variant_gates::use_backward<V>(gates_of(l), gates::tanh_(normed), keep(l),
                                                      l.load(dh_row) + l.load(s.dy + r * H), &d, &dh_prev));
      l.store(dg_row + 3 * H, d.o_pre);
      if (s.options.keep_h) l.store(dh_row, dh_prev);
    });
    // through the layer norm to c, then the remember, learn and forget gates
    layer_norm_row_backward<scalar_t>(
        H, rstd, s.options.ln_c_weight, c_hat, [&](const Lanes<scalar_t>& l) { return l.load(dln_row); },
        [&](const Lanes<scalar_t>& l, const V& dc) {
          gates::GateGrads<V> d;
          d.o_pre = l.load(dg_row + 3 * H);
          variant_gates::remember_backward<V>(gates_of(l), l.load(c_prev_row), peephole(l), keep(l), dc,
                                              l.load(dc_row), V(scalar_t(0)), &d);
          store_grads(l, d);
        });
  }
  if (s.options.ln_hh) {  // through the recurrent projection's layer norm
    const scalar_t* rec = s.rec + r * 4 * H;
    scalar_t* drec = s.drec + r * 4 * H;
    layer_norm_row_backward<scalar_t>(
        4 * H, s.stats[r * kStats], s.options.ln_hh, [&](const Lanes<scalar_t>& l) { return l.load(rec); },
        [&](const Lanes<scalar_t>& l) { return l.load(dg_row); },
        [&](const Lanes<scalar_t>& l, const V& v) { l.store(drec, v); });
  }
}

// This capability's copy of the table variant_row_kernels<scalar_t>() picks from
// (lstm_variant_pointwise.h).
template <typename scalar_t>
VariantRowKernels<scalar_t> variant_row_kernels() {
  return {&each_row<VariantForwardStep<scalar_t>, &forward_row<scalar_t>>,
          &each_row<VariantBackwardStep<scalar_t>, &backward_row<scalar_t>>};
}
template VariantRowKernels<float> variant_row_kernels<float>();
template VariantRowKernels<double> variant_row_kernels<double>();

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
