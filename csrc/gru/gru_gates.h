// The pointwise math of one GRU step: reset, update and candidate. Written once, compiled for
// the CPU kernels (also on SIMD vectors) and for CUDA kernels alike, on runtime/activations.h.
//
// A GRU keeps one memory, h. Each step decides how much of it to show the new candidate
// (reset gate r) and how much of it to keep unchanged (update gate z). torch's equations, in
// torch's gate order r, z, n ("pre" = pre-activation, "x part" = x W_i* + b_i*):
//   r  = sigmoid(x part_r + h W_hr + b_hr)           reset gate
//   z  = sigmoid(x part_z + h W_hz + b_hz)           update gate
//   hn = h W_hn + b_hn                               the candidate's view of the old memory
//   n  = tanh(x part_n + r * hn)                     candidate: what the memory could become
//   h' = (1 - z) * n + z * h                         update: blend the candidate and the old memory
// b_hn sits inside the reset product (as in torch and cuDNN), so the recurrent projection of the
// n block is kept apart from the input projection: it is one of the saved values.
//
// In the words of the LSTM lesson: the update gate does the forget and learn gates' work at once
// (keep z of the old memory, learn 1 - z of the candidate), and h is both memories.
#pragma once

#include "runtime/activations.h"

namespace lstm_ext {
namespace gru {

using activations::sigmoid;
using activations::tanh_;

// The activated gates of one hidden unit, as saved for backward.
template <typename T>
struct Gates {
  T r;   // reset gate
  T z;   // update gate
  T n;   // candidate
  T hn;  // h W_hn + b_hn: the old memory as the candidate sees it, before the reset
};

// How much of the old memory's view reaches the candidate.
template <typename T>
HOST_DEVICE inline T reset_gate(T r, T hn) {
  return r * hn;
}

// The new memory the step proposes.
template <typename T>
HOST_DEVICE inline T candidate(T n_x, T reset) {
  return tanh_(n_x + reset);
}

// Keep z of the old memory, take 1 - z of the candidate.
template <typename T>
HOST_DEVICE inline T update_gate(T z, T n, T h_prev) {
  return (T(1) - z) * n + z * h_prev;
}

// r_pre, z_pre: both projections summed; n_x: the input projection of the n block; hn: the
// recurrent one (with b_hn).
template <typename T>
HOST_DEVICE inline Gates<T> activate(T r_pre, T z_pre, T n_x, T hn) {
  const T r = sigmoid(r_pre);
  return Gates<T>{r, sigmoid(z_pre), candidate(n_x, reset_gate(r, hn)), hn};
}

// One unit, forward: the new memory h'.
template <typename T>
HOST_DEVICE inline T cell_forward(const Gates<T>& a, T h_prev) {
  return update_gate(a.z, a.n, h_prev);
}

// Gradients of one unit. The input projection gets (r_pre, z_pre, n_x) and the recurrent one
// (r_pre, z_pre, hn): they differ in the n block only, by the reset factor.
template <typename T>
struct GateGrads {
  T r_pre, z_pre;
  T n_x;     // gradient of the candidate's pre-activation: reaches x W_in + b_in
  T hn;      // n_x * r: reaches h W_hn + b_hn
  T h_prev;  // the direct path through the update gate only (the GEMMs add the rest)
};

// One unit, backward. dh: the whole gradient reaching h'. Walks the gates in reverse: update,
// candidate, reset.
template <typename T>
HOST_DEVICE inline GateGrads<T> cell_backward(const Gates<T>& a, T h_prev, T dh) {
  // update: h' = (1 - z) * n + z * h_prev
  const T d_n = dh * (T(1) - a.z);
  const T d_z = dh * (h_prev - a.n);
  // candidate: n = tanh(n_x + r * hn)
  const T d_n_pre = d_n * (T(1) - a.n * a.n);
  // reset: r * hn
  const T d_r = d_n_pre * a.hn;
  GateGrads<T> grads;
  grads.r_pre = d_r * a.r * (T(1) - a.r);
  grads.z_pre = d_z * a.z * (T(1) - a.z);
  grads.n_x = d_n_pre;
  grads.hn = d_n_pre * a.r;
  grads.h_prev = dh * a.z;
  return grads;
}

}  // namespace gru
}  // namespace lstm_ext
