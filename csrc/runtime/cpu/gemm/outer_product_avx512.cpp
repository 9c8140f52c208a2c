// The outer-product kernel for AVX-512 CPUs: outer_product_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx512.h"
#include "runtime/cpu/gemm/outer_product_impl.h"
#endif
