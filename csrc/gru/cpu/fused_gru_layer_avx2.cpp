// The GRU's fused kernels for AVX2 CPUs: fused_gru_layer_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx2.h"
#include "gru/cpu/fused_gru_layer_impl.h"
#endif
