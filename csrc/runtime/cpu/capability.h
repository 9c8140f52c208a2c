// Which CPU capability's kernels run here, for every family's per-capability kernels (each
// compiled once per capability, under runtime/cpu/capability_*.h, and exported as NAME_DEFAULT,
// NAME_AVX2 and NAME_AVX512). One reading and one dispatch, so every family picks the same.
#pragma once

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

}  // namespace cpu
}  // namespace lstm_ext

// The body of a function returning NAME_DEFAULT<T>(), NAME_AVX2<T>() or NAME_AVX512<T>() for
// this CPU; those must be declared in lstm_ext::cpu.
#if defined(__x86_64__)
#define LSTM_EXT_BY_CAPABILITY(NAME, T)                               \
  switch (::lstm_ext::cpu::cpu_capability()) {                        \
    case ::lstm_ext::cpu::Capability::AVX512: return NAME##_AVX512<T>(); \
    case ::lstm_ext::cpu::Capability::AVX2: return NAME##_AVX2<T>();     \
    default: return NAME##_DEFAULT<T>();                              \
  }
#else
#define LSTM_EXT_BY_CAPABILITY(NAME, T) return NAME##_DEFAULT<T>();
#endif
