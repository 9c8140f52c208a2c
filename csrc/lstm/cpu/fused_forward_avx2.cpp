// The LSTM's fused forward kernel for AVX2 CPUs: fused_forward_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx2.h"
#include "lstm/cpu/fused_forward_impl.h"
#endif
