// The variants' pointwise kernels for AVX-512 CPUs: lstm_variant_pointwise_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx512.h"
#include "lstm_variants/cpu/lstm_variant_pointwise_impl.h"
#endif
