// The GRU's pointwise kernels for AVX2 CPUs: gru_pointwise_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx2.h"
#include "gru/cpu/gru_pointwise_impl.h"
#endif
