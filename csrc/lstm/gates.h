// The pointwise math of one LSTM step, in the words of the lesson: learn, forget,
// remember and use gates. Written once, compiled for the CPU kernels and the CUDA
// kernels alike, so the CPU tests also prove the arithmetic the GPU runs.
//
// Standard equations (torch's gate order i, f, g, o; "pre" = pre-activation):
//   learn    = tanh(g_pre) * sigmoid(i_pre)         lesson: N_t * i_t
//   kept     = c_prev * sigmoid(f_pre)              lesson: LTM_{t-1} * f_t
//   c        = learn + kept                         remember gate: the new long-term memory
//   h        = sigmoid(o_pre) * tanh(c)             use gate: the new short-term memory
// The lesson's use gate takes tanh of the forgotten memory (LTM_{t-1} * f_t); torch, cuDNN,
// oneDNN and this file take tanh of the new cell state c.
#pragma once

#include "runtime/activations.h"

namespace lstm_ext {
namespace gates {

using activations::sigmoid;
using activations::tanh_;

// The activated gates of one hidden unit.
template <typename T>
struct Gates {
  T i;  // ignore factor of the learn gate (input gate)
  T f;  // forget factor
  T g;  // what the learn gate combines (candidate)
  T o;  // use factor (output gate)
};

template <typename T>
HOST_DEVICE inline Gates<T> activate(T i_pre, T f_pre, T g_pre, T o_pre) {
  return Gates<T>{sigmoid(i_pre), sigmoid(f_pre), tanh_(g_pre), sigmoid(o_pre)};
}

template <typename T>
HOST_DEVICE inline T learn_gate(const Gates<T>& a) {
  return a.g * a.i;
}

template <typename T>
HOST_DEVICE inline T forget_gate(const Gates<T>& a, T c_prev) {
  return c_prev * a.f;
}

template <typename T>
HOST_DEVICE inline T remember_gate(T learned, T kept) {
  return learned + kept;
}

template <typename T>
HOST_DEVICE inline T use_gate(const Gates<T>& a, T c) {
  return a.o * tanh_(c);
}

// One unit, forward: returns the new cell state c; writes the new hidden value to *h.
template <typename T>
HOST_DEVICE inline T cell_forward(const Gates<T>& a, T c_prev, T* h) {
  const T c = remember_gate(learn_gate(a), forget_gate(a, c_prev));
  *h = use_gate(a, c);
  return c;
}

// Gradients of one unit with respect to the four pre-activations and to c_prev.
template <typename T>
struct GateGrads {
  T i_pre, f_pre, g_pre, o_pre;
  T c_prev;
};

// One unit, backward. dh: gradient reaching h_t; dc_next: gradient reaching c_t from step t+1.
// Walks the gates in reverse: use, remember, then learn and forget.
template <typename T>
HOST_DEVICE inline GateGrads<T> cell_backward(const Gates<T>& a, T c, T c_prev, T dh, T dc_next) {
  const T tanh_c = tanh_(c);
  // use gate: h = o * tanh(c)
  const T d_o = dh * tanh_c;
  const T dc = dc_next + dh * a.o * (T(1) - tanh_c * tanh_c);
  // remember gate: c = learned + kept, so dc reaches both unchanged.
  // learn gate: learned = g * i;  forget gate: kept = c_prev * f
  const T d_i = dc * a.g;
  const T d_g = dc * a.i;
  const T d_f = dc * c_prev;
  GateGrads<T> grads;
  grads.i_pre = d_i * a.i * (T(1) - a.i);
  grads.f_pre = d_f * a.f * (T(1) - a.f);
  grads.g_pre = d_g * (T(1) - a.g * a.g);
  grads.o_pre = d_o * a.o * (T(1) - a.o);
  grads.c_prev = dc * a.f;
  return grads;
}

}  // namespace gates
}  // namespace lstm_ext
