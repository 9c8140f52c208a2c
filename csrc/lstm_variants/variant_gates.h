// The pointwise math of the LSTM variants, one unit at a time, host and device alike
// (the CPU kernels in cpu/lstm_variant_pointwise_impl.h run it on SIMD vectors; a CUDA
// kernel can run it on scalars). Built on gates.h's learn, forget, remember and use gates.
//
// Peephole (Gers & Schmidhuber): the gates also look at the long-term memory,
//   i = sigmoid(i_pre + p_i * c_prev)   f = sigmoid(f_pre + p_f * c_prev)
//   o = sigmoid(o_pre + p_o * c)        (c: the new cell state)
// Zoneout (Krueger et al. 2016): each unit keeps its previous value with weight `keep`
// (a 0/1 mask in training, the probability itself in eval mode):
//   c_carried = keep_c * c_prev + (1 - keep_c) * c      h = keep_h * h_prev + (1 - keep_h) * o * tanh(c)
// The lesson's use gate (use_gate="lesson"): h = U * V with U = tanh(W_u (c_prev * f) + b_u) and
// V = o, the standard output gate: the use gate squashes W_u applied to the forgotten memory
// (LTM_{t-1} * f_t) rather than c. The GEMM lives in the kernels; here the use gate squashes
// its result u_pre, and `kept` (c_prev * f) gets a second gradient path, d_kept.
// Layer norm (Ba et al. 2016) adds no math here: the use gate then squashes LN(c) instead of c,
// and the row-wise normalisation lives in the kernels.
// With p = 0 and keep = 0 all reduce to gates.h's standard cell.
#pragma once

#include "lstm/gates.h"

namespace lstm_ext {
namespace variant_gates {

using gates::Gates;
using gates::GateGrads;

// Peephole weights of one unit; zero when the layer has none.
template <typename T>
struct Peephole {
  T i, f, o;
};

// Zoneout weights of one unit: how much of the previous h and c is kept.
template <typename T>
struct Keep {
  T h, c;
};

// Written as a blend so that a 0/1 mask keeps or replaces a unit exactly.
template <typename T>
HOST_DEVICE inline T zoneout(T keep, T previous, T next) {
  return keep * previous + (T(1) - keep) * next;
}

// The gates and the new cell state of one unit (before zoneout and before the use gate).
template <typename T>
struct Cell {
  Gates<T> a;  // activated gates, saved for backward
  T c;         // the new cell state before zoneout
};

template <typename T>
HOST_DEVICE inline Cell<T> cell_gates(T i_pre, T f_pre, T g_pre, T o_pre, T c_prev, const Peephole<T>& p) {
  Cell<T> r;
  r.a.i = gates::sigmoid(i_pre + p.i * c_prev);
  r.a.f = gates::sigmoid(f_pre + p.f * c_prev);
  r.a.g = gates::tanh_(g_pre);
  r.c = gates::remember_gate(gates::learn_gate(r.a), gates::forget_gate(r.a, c_prev));
  r.a.o = gates::sigmoid(o_pre + p.o * r.c);
  return r;
}

// What the next step sees.
template <typename T>
struct Carried {
  T c;  // c after zoneout
  T h;  // the new short-term memory after zoneout
};

// The use gate on `long_term` (c itself, or c layer-normalized), then zoneout of h and c.
template <typename T>
HOST_DEVICE inline Carried<T> cell_output(const Cell<T>& cell, T long_term, T c_prev, T h_prev, const Keep<T>& keep) {
  return Carried<T>{zoneout(keep.c, c_prev, cell.c), zoneout(keep.h, h_prev, gates::use_gate(cell.a, long_term))};
}

// Backward of the use gate and of zoneout on h. dh: gradient reaching h (after zoneout).
// Writes o's pre-activation gradient to g->o_pre and h_prev's direct share to *dh_prev;
// returns the gradient reaching the use gate's long-term input (c, or LN(c)).
template <typename T>
HOST_DEVICE inline T use_backward(const Gates<T>& a, T tanh_long_term, const Keep<T>& keep, T dh, GateGrads<T>* g,
                                  T* dh_prev) {
  *dh_prev = keep.h * dh;
  const T dh_new = dh - *dh_prev;
  g->o_pre = dh_new * tanh_long_term * a.o * (T(1) - a.o);
  return dh_new * a.o * (T(1) - tanh_long_term * tanh_long_term);
}

// Backward of the remember, learn and forget gates. dc: every gradient reaching c (before
// zoneout) except o's peephole path, which is added here; dc_next: gradient of c after zoneout;
// d_kept: the gradient reaching kept = c_prev * f other than through c (the lesson's use gate).
template <typename T>
HOST_DEVICE inline void remember_backward(const Gates<T>& a, T c_prev, const Peephole<T>& p, const Keep<T>& keep,
                                          T dc, T dc_next, T d_kept, GateGrads<T>* g) {
  dc = dc + (dc_next - keep.c * dc_next) + g->o_pre * p.o;
  const T dk = dc + d_kept;
  g->i_pre = dc * a.g * a.i * (T(1) - a.i);
  g->f_pre = dk * c_prev * a.f * (T(1) - a.f);
  g->g_pre = dc * a.i * (T(1) - a.g * a.g);
  g->c_prev = keep.c * dc_next + dk * a.f + g->i_pre * p.i + g->f_pre * p.f;
}

// One unit without layer norm, backward. dh: gradient reaching h (after zoneout); dc_next:
// gradient reaching c after zoneout. Returns the pre-activation gradients and c_prev's (in
// .c_prev); *dh_prev gets the part of h_prev's gradient that zoneout passes straight through.
template <typename T>
HOST_DEVICE inline GateGrads<T> cell_backward(const Gates<T>& a, T c, T c_prev, const Peephole<T>& p,
                                              const Keep<T>& keep, T dh, T dc_next, T* dh_prev) {
  GateGrads<T> g;
  const T dc = use_backward(a, gates::tanh_(c), keep, dh, &g, dh_prev);
  remember_backward(a, c_prev, p, keep, dc, dc_next, T(0), &g);
  return g;
}

}  // namespace variant_gates
}  // namespace lstm_ext
