// The GRU's fused kernels for AVX-512 CPUs: fused_gru_layer_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx512.h"
#include "gru/cpu/fused_gru_layer_impl.h"
#endif
