// The activations every family's gate math is built of (lstm/gates.h, gru/gru_gates.h,
// lstm_variants/variant_gates.h): sigmoid and tanh on one element, host and device alike, and on
// whole SIMD vectors once a backend specializes Math for its vector type (runtime/cpu/simd.h).
#pragma once

#include <cmath>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define HOST_DEVICE __host__ __device__
#else
#define HOST_DEVICE
#endif

// One call of a float or double math function, in a Math member, where a bare call would find
// the member itself and recurse. On the host, std's overloads; on the device, CUDA's overloads
// in the global namespace. Either way double stays double: no float-only intrinsics.
#ifdef __CUDA_ARCH__
#define LSTM_EXT_SCALAR_MATH(FN, X) return ::FN(X)
#else
#define LSTM_EXT_SCALAR_MATH(FN, X) \
  using std::FN;                    \
  return FN(X)
#endif

namespace lstm_ext {
namespace activations {

// exp and tanh for one element type. A backend may specialize Math for a SIMD vector type, and
// every gate function built on sigmoid and tanh_ then runs on whole vectors unchanged.
template <typename T>
struct Math {
  HOST_DEVICE static T exp(T x) { LSTM_EXT_SCALAR_MATH(exp, x); }
  HOST_DEVICE static T tanh(T x) { LSTM_EXT_SCALAR_MATH(tanh, x); }
};

// T(0) - x rather than -x: SIMD vector types have no unary minus.
template <typename T>
HOST_DEVICE inline T sigmoid(T x) {
  return T(1) / (T(1) + Math<T>::exp(T(0) - x));
}

template <typename T>
HOST_DEVICE inline T tanh_(T x) {
  return Math<T>::tanh(x);
}

}  // namespace activations
}  // namespace lstm_ext
