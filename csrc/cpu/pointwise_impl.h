// The pointwise row kernels, included once per CPU capability by pointwise_*.cpp, each of
// which defines CPU_CAPABILITY first. gates.h's functions run here on whole SIMD vectors
// (at::vec::Vectorized, whose exp and tanh are SLEEF's, within 1 ulp), with a scalar tail.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <type_traits>

#include "cpu/pointwise.h"
#include "gates.h"

namespace lstm_ext {
namespace gates {

template <typename T>
struct Math<at::vec::Vectorized<T>> {
  static at::vec::Vectorized<T> exp(const at::vec::Vectorized<T>& x) { return x.exp(); }
  static at::vec::Vectorized<T> tanh(const at::vec::Vectorized<T>& x) { return x.tanh(); }
};

}  // namespace gates

namespace cpu {
namespace CPU_CAPABILITY {

template <typename scalar_t, typename V>
inline void forward_units(const ForwardStep<scalar_t>& s, int64_t r, int64_t j, int64_t count) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H;
  const auto load_pre = [&](int64_t block) {
    if constexpr (std::is_same_v<V, opmath_t>) {
      return static_cast<opmath_t>(s.pre[r * 4 * H + block * H + j]);
    } else {
      return V::loadu(s.pre + r * 4 * H + block * H + j, count);
    }
  };
  const auto load = [&](const opmath_t* p) {
    if constexpr (std::is_same_v<V, opmath_t>) return p[j];
    else return V::loadu(p + j, count);
  };
  const auto store = [&](auto* p, const V& v) {
    if constexpr (std::is_same_v<V, opmath_t>) p[j] = static_cast<std::remove_pointer_t<decltype(p)>>(v);
    else v.store(p + j, count);
  };
  const gates::Gates<V> a = gates::activate<V>(load_pre(0), load_pre(1), load_pre(2), load_pre(3));
  opmath_t* c_row = s.c_state + r * H;
  V h;
  const V c = gates::cell_forward(a, load(c_row), &h);
  opmath_t* g_row = s.gates + r * 4 * H;
  store(g_row, a.i);
  store(g_row + H, a.f);
  store(g_row + 2 * H, a.g);
  store(g_row + 3 * H, a.o);
  store(s.cells + r * H, c);
  store(c_row, c);
  store(s.h_out + r * H, h);
  if (s.out) store(s.out + r * H, h);
}

template <typename scalar_t, typename V>
inline void backward_units(const BackwardStep<scalar_t>& s, int64_t r, int64_t j, int64_t count) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t H = s.H;
  const auto load = [&](const auto* p) {
    if constexpr (std::is_same_v<V, opmath_t>) return static_cast<opmath_t>(p[j]);
    else return V::loadu(p + j, count);
  };
  const auto store = [&](auto* p, const V& v) {
    if constexpr (std::is_same_v<V, opmath_t>) p[j] = static_cast<std::remove_pointer_t<decltype(p)>>(v);
    else v.store(p + j, count);
  };
  const opmath_t* g_row = s.gates + r * 4 * H;
  const gates::Gates<V> a{load(g_row), load(g_row + H), load(g_row + 2 * H), load(g_row + 3 * H)};
  const V c = load(s.cells + r * H);
  const V c_prev = load(r < s.n_prev ? s.c_prev + r * H : s.c0 + r * H);
  V dh = load(s.dh + r * H);
  if (s.dy) dh = dh + load(s.dy + r * H);
  opmath_t* dc_row = s.dc + r * H;
  const gates::GateGrads<V> d = gates::cell_backward(a, c, c_prev, dh, load(dc_row));
  scalar_t* dg_row = s.dgates + r * 4 * H;
  store(dg_row, d.i_pre);
  store(dg_row + H, d.f_pre);
  store(dg_row + 2 * H, d.g_pre);
  store(dg_row + 3 * H, d.o_pre);
  store(dc_row, d.c_prev);
  if (s.m) store(s.m + r * H, gates::use_gate(a, c));
}

// Vector code only where storage and math types agree (float, double); bfloat16 runs the
// scalar path with float math.
template <typename scalar_t>
constexpr bool vectorize = std::is_same_v<scalar_t, at::opmath_type<scalar_t>>;

template <typename scalar_t>
void forward_rows_impl(const ForwardStep<scalar_t>& s, int64_t begin, int64_t end) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t r = begin; r < end; ++r) {
    int64_t j = 0;
    if constexpr (vectorize<scalar_t>) {
      using V = at::vec::Vectorized<scalar_t>;
      for (; j + V::size() <= s.H; j += V::size()) forward_units<scalar_t, V>(s, r, j, V::size());
      if (j < s.H) forward_units<scalar_t, V>(s, r, j, s.H - j);
    } else {
      for (; j < s.H; ++j) forward_units<scalar_t, opmath_t>(s, r, j, 1);
    }
  }
}

template <typename scalar_t>
void backward_rows_impl(const BackwardStep<scalar_t>& s, int64_t begin, int64_t end) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t r = begin; r < end; ++r) {
    int64_t j = 0;
    if constexpr (vectorize<scalar_t>) {
      using V = at::vec::Vectorized<scalar_t>;
      for (; j + V::size() <= s.H; j += V::size()) backward_units<scalar_t, V>(s, r, j, V::size());
      if (j < s.H) backward_units<scalar_t, V>(s, r, j, s.H - j);
    } else {
      for (; j < s.H; ++j) backward_units<scalar_t, opmath_t>(s, r, j, 1);
    }
  }
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext

// Each pointwise_*.cpp exports its table under its capability's name.
#define LSTM_EXT_POINTWISE_TABLE(NAME)                                                          \
  namespace lstm_ext::cpu {                                                                     \
  template <typename scalar_t>                                                                  \
  ForwardRows<scalar_t> forward_rows_##NAME() { return &CPU_CAPABILITY::forward_rows_impl<scalar_t>; } \
  template <typename scalar_t>                                                                  \
  BackwardRows<scalar_t> backward_rows_##NAME() { return &CPU_CAPABILITY::backward_rows_impl<scalar_t>; } \
  template ForwardRows<float> forward_rows_##NAME<float>();                                     \
  template ForwardRows<double> forward_rows_##NAME<double>();                                   \
  template ForwardRows<c10::BFloat16> forward_rows_##NAME<c10::BFloat16>();                     \
  template BackwardRows<float> backward_rows_##NAME<float>();                                   \
  template BackwardRows<double> backward_rows_##NAME<double>();                                 \
  template BackwardRows<c10::BFloat16> backward_rows_##NAME<c10::BFloat16>();                   \
  }
