// The pointwise row kernels, included once per CPU capability by pointwise_*.cpp, each of
// which defines CPU_CAPABILITY first. gates.h's functions run here on whole SIMD vectors
// (at::vec::Vectorized, whose exp and tanh are SLEEF's, within 1 ulp), in the opmath type:
// float for bfloat16 storage, so bfloat16 runs vectorized too.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <type_traits>

#include "lstm/cpu/pointwise.h"
#include "lstm/gates.h"

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

// V is a SIMD vector of the opmath type; count < V::size() only at the end of a row. Storage
// of another type (bfloat16) is converted element by element through a small buffer: the
// conversion is cheap next to exp and tanh, and the same code serves every capability.
template <typename V, typename T>
inline V load_as(const T* p, int64_t count) {
  using M = typename V::value_type;
  if constexpr (std::is_same_v<T, M>) {
    return V::loadu(p, count);
  } else {
    M buf[V::size()];
    for (int64_t k = 0; k < count; ++k) buf[k] = static_cast<M>(p[k]);
    return V::loadu(buf, count);
  }
}

template <typename V, typename T>
inline void store_as(T* p, const V& v, int64_t count) {
  using M = typename V::value_type;
  if constexpr (std::is_same_v<T, M>) {
    v.store(p, count);
  } else {
    M buf[V::size()];
    v.store(buf, count);
    for (int64_t k = 0; k < count; ++k) p[k] = static_cast<T>(buf[k]);
  }
}

template <typename scalar_t, typename V>
inline void forward_units(const ForwardStep<scalar_t>& s, int64_t r, int64_t j, int64_t count) {
  const int64_t H = s.H;
  const auto load = [&](const auto* p) { return load_as<V>(p + j, count); };
  const auto store = [&](auto* p, const V& v) { store_as(p + j, v, count); };
  const scalar_t* pre_row = s.pre + r * 4 * H;
  V pre[4] = {load(pre_row), load(pre_row + H), load(pre_row + 2 * H), load(pre_row + 3 * H)};
  if (s.rec) {  // a team member's recurrent product, added in the opmath type
    const int64_t units = s.unit_end - s.unit_begin;
    const scalar_t* rec_row = s.rec + r * 4 * units + (j - s.unit_begin);
    for (int64_t gate = 0; gate < 4; ++gate) pre[gate] = pre[gate] + load_as<V>(rec_row + gate * units, count);
  }
  const gates::Gates<V> a = gates::activate<V>(pre[0], pre[1], pre[2], pre[3]);
  auto* c_row = s.c_state + r * H;
  V h;
  const V c = gates::cell_forward(a, load(c_row), &h);
  if (s.gates) {  // saved for backward; an inference-only forward leaves them out
    auto* g_row = s.gates + r * 4 * H;
    store(g_row, a.i);
    store(g_row + H, a.f);
    store(g_row + 2 * H, a.g);
    store(g_row + 3 * H, a.o);
    store(s.cells + r * H, c);
  }
  store(c_row, c);
  store(s.h_out + r * H, h);
  if (s.out) store(s.out + r * H, h);
}

template <typename scalar_t, typename V>
inline void backward_units(const BackwardStep<scalar_t>& s, int64_t r, int64_t j, int64_t count) {
  const int64_t H = s.H;
  const auto load = [&](const auto* p) { return load_as<V>(p + j, count); };
  const auto store = [&](auto* p, const V& v) { store_as(p + j, v, count); };
  const auto* g_row = s.gates + r * 4 * H;
  const gates::Gates<V> a{load(g_row), load(g_row + H), load(g_row + 2 * H), load(g_row + 3 * H)};
  const V c = load(s.cells + r * H);
  const V c_prev = load(r < s.n_prev ? s.c_prev + r * H : s.c0 + r * H);
  V dh = load(s.dh + r * H);
  if (s.dy) dh = dh + load(s.dy + r * H);
  auto* dc_row = s.dc + r * H;
  const gates::GateGrads<V> d = gates::cell_backward(a, c, c_prev, dh, load(dc_row));
  scalar_t* dg_row = s.dgates + r * 4 * H;
  store(dg_row, d.i_pre);
  store(dg_row + H, d.f_pre);
  store(dg_row + 2 * H, d.g_pre);
  store(dg_row + 3 * H, d.o_pre);
  store(dc_row, d.c_prev);
  if (s.m) store(s.m + r * H, gates::use_gate(a, c));
}

// Every row in [begin, end), over the step's units: whole SIMD vectors, then one partial vector.
// Math runs in the opmath type, so bfloat16 rows are vectorized in float.
template <typename scalar_t, typename Step, typename Units>
inline void for_each_unit_block(const Step& s, int64_t begin, int64_t end, Units units) {
  using V = at::vec::Vectorized<at::opmath_type<scalar_t>>;
  const int64_t last = s.unit_end < 0 ? s.H : s.unit_end;
  for (int64_t r = begin; r < end; ++r) {
    int64_t j = s.unit_begin;
    for (; j + V::size() <= last; j += V::size()) units(s, r, j, V::size());
    if (j < last) units(s, r, j, last - j);
  }
}

template <typename scalar_t>
void forward_rows_impl(const ForwardStep<scalar_t>& s, int64_t begin, int64_t end) {
  using V = at::vec::Vectorized<at::opmath_type<scalar_t>>;
  for_each_unit_block<scalar_t>(s, begin, end, forward_units<scalar_t, V>);
}

template <typename scalar_t>
void backward_rows_impl(const BackwardStep<scalar_t>& s, int64_t begin, int64_t end) {
  using V = at::vec::Vectorized<at::opmath_type<scalar_t>>;
  for_each_unit_block<scalar_t>(s, begin, end, backward_units<scalar_t, V>);
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
