// Compiles the rest of the including file for AVX512 CPUs, as capability_avx2.h does for AVX2.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#include "runtime/cpu/capability_avx512_features.h"
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
