// The LSTM variants' fused kernels for AVX2 CPUs: fused_variant_layer_impl.h, built as
// capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx2.h"
#include "lstm_variants/cpu/fused_variant_layer_impl.h"
#endif
