// Which CPU capability's kernels run here, for every family's per-capability kernels. One reading
// and one dispatch, so every family picks the same.
//
// A family compiles its kernels once per capability: one translation unit per capability
// (<kernels>_default.cpp, _avx2.cpp, _avx512.cpp; the latter two include capability_avx2.h or
// capability_avx512.h first) includes the family's *_impl.h, whose code lives in namespace
// lstm_ext::cpu::CPU_CAPABILITY, so each capability's copy has a name of its own. The impl
// defines there a function template returning the family's table of kernel pointers, and
// explicitly instantiates it for the dtypes the family serves (runtime/cpu/simd.h's
// LSTM_EXT_LANE_ROW_KERNELS writes both for the LSTM and the GRU). In the family's header,
// LSTM_EXT_KERNELS_BY_CAPABILITY declares the three copies and defines the one callers use,
// which returns this CPU's table.
#pragma once

#include <cstdint>

#if defined(__x86_64__)
#include <ATen/Version.h>

#include <string>
#endif

namespace lstm_ext {
namespace cpu {

enum class Capability { DEFAULT, AVX2, AVX512 };

// ATen's answer already honours ATEN_CPU_CAPABILITY and what the CPU and OS support; read once.
inline Capability cpu_capability() {
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

// Whether this CPU runs the AVX512_BF16 copies (capability_avx512_bf16.h): the AVX512 capability,
// which ATEN_CPU_CAPABILITY can lower, and the BF16 extension.
inline bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = cpu_capability() == Capability::AVX512 && __builtin_cpu_supports("avx512bf16");
  return has;
#else
  return false;
#endif
}

// A pointwise kernel over rows [begin, end) of one time step, and a family's pair of them.
template <typename Step>
using RowKernel = void (*)(const Step&, int64_t begin, int64_t end);

template <typename ForwardStep, typename BackwardStep>
struct RowKernels {
  RowKernel<ForwardStep> forward;
  RowKernel<BackwardStep> backward;
};

}  // namespace cpu
}  // namespace lstm_ext

// The body of a function returning DEFAULT::NAME<T>(), AVX2::NAME<T>() or AVX512::NAME<T>() for
// this CPU. Only x86 builds compile the AVX copies.
#if defined(__x86_64__)
#define LSTM_EXT_BY_CAPABILITY(NAME, T)                                     \
  switch (::lstm_ext::cpu::cpu_capability()) {                              \
    case ::lstm_ext::cpu::Capability::AVX512: return AVX512::NAME<T>(); \
    case ::lstm_ext::cpu::Capability::AVX2: return AVX2::NAME<T>();     \
    default: return DEFAULT::NAME<T>();                                 \
  }
#else
#define LSTM_EXT_BY_CAPABILITY(NAME, T) return DEFAULT::NAME<T>();
#endif

// In namespace lstm_ext::cpu: declares TABLE<T> NAME<T>() as each capability's impl defines it,
// and defines NAME<T>(), this CPU's TABLE<T>. The picker must not be called from an impl, whose
// translation unit is compiled for a wider instruction set than this CPU may have.
#define LSTM_EXT_KERNELS_BY_CAPABILITY(TABLE, NAME) \
  namespace DEFAULT {                               \
  template <typename T>                             \
  TABLE<T> NAME();                                  \
  }                                                 \
  namespace AVX2 {                                  \
  template <typename T>                             \
  TABLE<T> NAME();                                  \
  }                                                 \
  namespace AVX512 {                                \
  template <typename T>                             \
  TABLE<T> NAME();                                  \
  }                                                 \
  template <typename T>                             \
  TABLE<T> NAME() {                                 \
    LSTM_EXT_BY_CAPABILITY(NAME, T)                 \
  }
