// The variant pointwise kernels for AVX2 CPUs; see lstm_variant_pointwise_impl.h.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx2.h"
#include "lstm_variants/cpu/lstm_variant_pointwise_impl.h"

LSTM_EXT_VARIANT_TABLE(AVX2)
#endif
