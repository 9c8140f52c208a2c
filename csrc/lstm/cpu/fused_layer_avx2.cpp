// The LSTM's fused kernels for AVX2 CPUs: fused_layer_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx2.h"
#include "lstm/cpu/fused_layer_impl.h"
#endif
