// The GRU's pointwise kernels for AVX-512 CPUs: gru_pointwise_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx512.h"
#include "gru/cpu/gru_pointwise_impl.h"
#endif
