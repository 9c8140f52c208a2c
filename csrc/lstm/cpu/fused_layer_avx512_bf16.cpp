// The LSTM's bfloat16 fused forward for AVX-512 CPUs with the BF16 extension: fused_layer_impl.h,
// built as capability_avx512_bf16.h says.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx512_bf16.h"
#include "lstm/cpu/fused_layer_impl.h"
#endif
