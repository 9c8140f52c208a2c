// The small-rows GEMM kernels for AVX2 CPUs: small_gemm_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx2.h"
#include "runtime/cpu/gemm/small_gemm_impl.h"
#endif
