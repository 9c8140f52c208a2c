// The GRU's pointwise row kernels, included once per CPU capability by lstm/cpu/pointwise_*.cpp after
// pointwise_impl.h (whose Math<Vectorized> makes gru_gates.h run on whole SIMD vectors, in the
// opmath type: float for bfloat16).
#pragma once

#include <type_traits>

#include "gru/cpu/gru_pointwise.h"
#include "lstm/cpu/pointwise_impl.h"
#include "gru/gru_gates.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// Units j .. j+count of one row as one SIMD vector V of the opmath type (load_as / store_as of
// pointwise_impl.h convert bfloat16 storage), so every dtype runs vector code.
template <typename scalar_t, typename V>
struct Lanes {
  int64_t j, count;

  template <typename P>
  V load(const P* p) const {
    return load_as<V>(p + j, count);
  }
  template <typename P>
  void store(P* p, const V& v) const {
    store_as(p + j, v, count);
  }
};

// Calls units(V{}, r, j, count) over rows begin..end and the step's units: whole vectors, then
// the tail as a partial vector.
template <typename scalar_t, typename Step, typename Units>
inline void for_each_unit(const Step& s, int64_t begin, int64_t end, const Units& units) {
  using V = at::vec::Vectorized<at::opmath_type<scalar_t>>;
  const int64_t last = s.unit_end < 0 ? s.H : s.unit_end;
  for (int64_t r = begin; r < end; ++r) {
    int64_t j = s.unit_begin;
    for (; j + V::size() <= last; j += V::size()) units(V(), r, j, V::size());
    if (j < last) units(V(), r, j, last - j);
  }
}

template <typename scalar_t>
void gru_forward_rows_impl(const GruForwardStep<scalar_t>& s, int64_t begin, int64_t end) {
  const int64_t H = s.H;
  for_each_unit<scalar_t>(s, begin, end, [&](auto tag, int64_t r, int64_t j, int64_t count) {
    using V = decltype(tag);
    const Lanes<scalar_t, V> lane{j, count};
    const scalar_t* x = s.x_pre + r * 3 * H;
    const scalar_t* h = s.h_pre + r * 3 * H;
    V hn = lane.load(h + 2 * H);
    if (s.b_hn) hn = hn + lane.load(s.b_hn);
    const gru::Gates<V> a =
        gru::activate<V>(lane.load(x) + lane.load(h), lane.load(x + H) + lane.load(h + H), lane.load(x + 2 * H), hn);
    typename GruForwardStep<scalar_t>::opmath_t* state = s.h_state + r * H;
    const V h_new = gru::cell_forward(a, lane.load(state));
    auto* g = s.gates + r * 4 * H;
    lane.store(g, a.r);
    lane.store(g + H, a.z);
    lane.store(g + 2 * H, a.n);
    lane.store(g + 3 * H, a.hn);
    lane.store(state, h_new);
    if (s.h_copy) lane.store(s.h_copy + r * H, h_new);
    lane.store(s.out + r * H, h_new);
  });
}

template <typename scalar_t>
void gru_backward_rows_impl(const GruBackwardStep<scalar_t>& s, int64_t begin, int64_t end) {
  const int64_t H = s.H;
  for_each_unit<scalar_t>(s, begin, end, [&](auto tag, int64_t r, int64_t j, int64_t count) {
    using V = decltype(tag);
    const Lanes<scalar_t, V> lane{j, count};
    const auto* g = s.gates + r * 4 * H;
    const gru::Gates<V> a{lane.load(g), lane.load(g + H), lane.load(g + 2 * H), lane.load(g + 3 * H)};
    scalar_t* dh_row = s.dh + r * H;
    V dh = lane.load(dh_row);
    if (s.dy) dh = dh + lane.load(s.dy + r * H);
    const scalar_t* h_prev = r < s.n_prev ? s.h_prev + r * H : s.h0 + r * H;
    const gru::GateGrads<V> d = gru::cell_backward(a, lane.load(h_prev), dh);
    scalar_t* dx = s.d_x + r * 3 * H;
    scalar_t* dhh = s.d_h + r * 3 * H;
    lane.store(dx, d.r_pre);
    lane.store(dx + H, d.z_pre);
    lane.store(dx + 2 * H, d.n_x);
    lane.store(dhh, d.r_pre);
    lane.store(dhh + H, d.z_pre);
    lane.store(dhh + 2 * H, d.hn);
    lane.store(s.d_hn + r * H, d.hn);
    lane.store(dh_row, d.h_prev);
  });
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext

// Each lstm/cpu/pointwise_*.cpp exports the GRU's table under its capability's name, next to the LSTM's.
#define LSTM_EXT_GRU_POINTWISE_TABLE(NAME)                                                                \
  namespace lstm_ext::cpu {                                                                               \
  template <typename scalar_t>                                                                            \
  GruForwardRows<scalar_t> gru_forward_rows_##NAME() { return &CPU_CAPABILITY::gru_forward_rows_impl<scalar_t>; } \
  template <typename scalar_t>                                                                            \
  GruBackwardRows<scalar_t> gru_backward_rows_##NAME() { return &CPU_CAPABILITY::gru_backward_rows_impl<scalar_t>; } \
  template GruForwardRows<float> gru_forward_rows_##NAME<float>();                                        \
  template GruForwardRows<double> gru_forward_rows_##NAME<double>();                                      \
  template GruForwardRows<c10::BFloat16> gru_forward_rows_##NAME<c10::BFloat16>();                        \
  template GruBackwardRows<float> gru_backward_rows_##NAME<float>();                                      \
  template GruBackwardRows<double> gru_backward_rows_##NAME<double>();                                    \
  template GruBackwardRows<c10::BFloat16> gru_backward_rows_##NAME<c10::BFloat16>();                      \
  }
