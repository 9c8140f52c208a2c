// The outer-product kernel for AVX2 CPUs: outer_product_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx2.h"
#include "runtime/cpu/gemm/outer_product_impl.h"
#endif
