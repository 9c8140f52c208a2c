// The row product for AVX512 CPUs: row_product_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx512.h"
#include "runtime/cpu/row_product/row_product_impl.h"
#endif
