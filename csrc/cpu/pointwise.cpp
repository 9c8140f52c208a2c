// Picks the pointwise kernels for this CPU once, from ATen's own reading of it.
#include "cpu/pointwise.h"

#include <ATen/Version.h>
#include <c10/util/BFloat16.h>

#include <string>

namespace lstm_ext {
namespace cpu {

template <typename scalar_t> ForwardRows<scalar_t> forward_rows_DEFAULT();
template <typename scalar_t> BackwardRows<scalar_t> backward_rows_DEFAULT();
#if defined(__x86_64__)
template <typename scalar_t> ForwardRows<scalar_t> forward_rows_AVX2();
template <typename scalar_t> BackwardRows<scalar_t> backward_rows_AVX2();
template <typename scalar_t> ForwardRows<scalar_t> forward_rows_AVX512();
template <typename scalar_t> BackwardRows<scalar_t> backward_rows_AVX512();
#endif

namespace {
enum class Capability { DEFAULT, AVX2, AVX512 };

Capability capability() {
  // ATen's answer already honours ATEN_CPU_CAPABILITY and what the CPU and OS support.
  static const Capability cap = [] {
#if defined(__x86_64__)
    const std::string name = at::get_cpu_capability();
    if (name == "AVX512") return Capability::AVX512;
    if (name == "AVX2") return Capability::AVX2;
#endif
    return Capability::DEFAULT;
  }();
  return cap;
}
}  // namespace

template <typename scalar_t>
ForwardRows<scalar_t> forward_rows() {
  switch (capability()) {
#if defined(__x86_64__)
    case Capability::AVX512: return forward_rows_AVX512<scalar_t>();
    case Capability::AVX2: return forward_rows_AVX2<scalar_t>();
#endif
    default: return forward_rows_DEFAULT<scalar_t>();
  }
}

template <typename scalar_t>
BackwardRows<scalar_t> backward_rows() {
  switch (capability()) {
#if defined(__x86_64__)
    case Capability::AVX512: return backward_rows_AVX512<scalar_t>();
    case Capability::AVX2: return backward_rows_AVX2<scalar_t>();
#endif
    default: return backward_rows_DEFAULT<scalar_t>();
  }
}

template ForwardRows<float> forward_rows<float>();
template ForwardRows<double> forward_rows<double>();
template ForwardRows<c10::BFloat16> forward_rows<c10::BFloat16>();
template BackwardRows<float> backward_rows<float>();
template BackwardRows<double> backward_rows<double>();
template BackwardRows<c10::BFloat16> backward_rows<c10::BFloat16>();

}  // namespace cpu
}  // namespace lstm_ext
