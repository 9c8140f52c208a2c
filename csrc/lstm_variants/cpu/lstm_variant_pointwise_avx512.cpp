// The variant pointwise kernels for AVX-512 CPUs; see lstm_variant_pointwise_impl.h.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx512.h"
#include "lstm_variants/cpu/lstm_variant_pointwise_impl.h"

LSTM_EXT_VARIANT_TABLE(AVX512)
#endif
