// The LSTM's fused forward kernel for AVX-512 CPUs: fused_forward_impl.h, built as capability.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx512.h"
#include "lstm/cpu/fused_forward_impl.h"
#endif
