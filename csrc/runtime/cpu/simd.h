// What every family's per-capability pointwise kernels share: the gate math's activations on
// whole SIMD vectors (at::vec::Vectorized: SLEEF's exp and tanh, within 1 ulp, except float on
// AVX2 and AVX-512, which float_activations.h inlines), and the
// walk over a row's units one vector at a time, loading and storing through storage of another
// type. Include it only from a family's *_impl.h, which a translation unit per CPU capability
// includes after defining CPU_CAPABILITY (runtime/cpu/capability.h).
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "runtime/activations.h"
#include "runtime/cpu/capability.h"

namespace lstm_ext {
namespace activations {

template <typename T>
struct Math<at::vec::Vectorized<T>> {
  static at::vec::Vectorized<T> exp(const at::vec::Vectorized<T>& x) { return x.exp(); }
  static at::vec::Vectorized<T> tanh(const at::vec::Vectorized<T>& x) { return x.tanh(); }
};

}  // namespace activations
}  // namespace lstm_ext

#include "runtime/cpu/float_activations.h"

namespace lstm_ext {
namespace cpu {
namespace CPU_CAPABILITY {

// V is a SIMD vector of the math type; count < V::size() only at the end of a row. Storage of
// another type (bfloat16) is converted element by element through a small buffer: the
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

// Units [j, j + count) of a row as one SIMD vector V of the math type M: a whole vector, or a
// partial one at the row's end. Pointers are to the row's unit 0.
template <typename M>
struct Lanes {
  using V = at::vec::Vectorized<M>;
  int64_t j, count;

  template <typename T>
  V load(const T* p) const {
    return load_as<V>(p + j, count);
  }
  // Zeros where an option is off (p null).
  template <typename T>
  V load_or_zero(const T* p) const {
    return p ? load(p) : V(M(0));
  }
  template <typename T>
  void store(T* p, const V& v) const {
    store_as(p + j, v, count);
  }
  // v with the lanes past the row's end zeroed, for sums over a row.
  V masked(const V& v) const { return V::set(V(M(0)), v, count); }
};

// Calls f(lanes) over units [0, n) of a row.
template <typename M, typename F>
inline void for_lanes(int64_t n, F f) {
  constexpr int64_t width = at::vec::Vectorized<M>::size();
  for (int64_t j = 0; j < n; j += width) f(Lanes<M>{j, std::min(width, n - j)});
}

// Calls f(r, lanes) over rows [begin, end) of a step and, in each, over the step's units
// [s.unit_begin, s.unit_end) (unit_end -1: all s.H; a team member's share otherwise, see
// step_team.h): whole vectors, then one partial vector. The math runs in scalar_t's op-math
// type, so bfloat16 rows run vectorized in float.
template <typename scalar_t, typename Step, typename F>
inline void for_each_lane(const Step& s, int64_t begin, int64_t end, const F& f) {
  using M = at::opmath_type<scalar_t>;
  constexpr int64_t width = at::vec::Vectorized<M>::size();
  const int64_t last = s.unit_end < 0 ? s.H : s.unit_end;
  for (int64_t r = begin; r < end; ++r) {
    int64_t j = s.unit_begin;
    for (; j + width <= last; j += width) f(r, Lanes<M>{j, width});
    if (j < last) f(r, Lanes<M>{j, last - j});
  }
}

// A row kernel (capability.h's RowKernel) of a function of one vector of a row's units,
// units(s, r, lanes), walked as for_each_lane walks them.
template <typename scalar_t, typename Step,
          void (*Units)(const Step&, int64_t r, Lanes<at::opmath_type<scalar_t>>)>
void lane_rows(const Step& s, int64_t begin, int64_t end) {
  for_each_lane<scalar_t>(s, begin, end, [&](int64_t r, Lanes<at::opmath_type<scalar_t>> lane) {
    Units(s, r, lane);
  });
}

// Defines, in a family's *_impl.h, this capability's copy of the family's table NAME<scalar_t>()
// (declared by LSTM_EXT_KERNELS_BY_CAPABILITY(RowKernels of FORWARD and BACKWARD, NAME)): the
// lane_rows of the forward_units and backward_units the impl defines for its steps FORWARD<scalar_t>
// and BACKWARD<scalar_t>, for float, double and bfloat16.
#define LSTM_EXT_LANE_ROW_KERNELS(NAME, FORWARD, BACKWARD)                                              \
  template <typename scalar_t>                                                                         \
  RowKernels<FORWARD<scalar_t>, BACKWARD<scalar_t>> NAME() {                                           \
    return {&lane_rows<scalar_t, FORWARD<scalar_t>, &forward_units<scalar_t>>,                         \
            &lane_rows<scalar_t, BACKWARD<scalar_t>, &backward_units<scalar_t>>};                      \
  }                                                                                                    \
  template RowKernels<FORWARD<float>, BACKWARD<float>> NAME<float>();                                 \
  template RowKernels<FORWARD<double>, BACKWARD<double>> NAME<double>();                              \
  template RowKernels<FORWARD<c10::BFloat16>, BACKWARD<c10::BFloat16>> NAME<c10::BFloat16>();

// A row kernel of a function of one whole row, row(s, r), for passes that need the whole row
// at once (a layer norm's sums).
template <typename Step, void (*Row)(const Step&, int64_t r)>
void each_row(const Step& s, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) Row(s, r);
}

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace lstm_ext
