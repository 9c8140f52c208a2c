// Compiles the rest of the including file for AVX2 CPUs: include it first, inside
// `#if defined(__x86_64__)`, then the kernels. It sets the target pragma, the feature macros
// that sleef.h and ATen's vector headers test, and CPU_CAPABILITY, as ATen's own
// per-capability files are compiled.
#pragma GCC target("avx2,fma,f16c")
#include "runtime/cpu/capability_x86.h"
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
