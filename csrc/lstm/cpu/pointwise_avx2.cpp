// The pointwise kernels for AVX2 CPUs; see pointwise_impl.h. The capability header comes
// first so that every function in this file, the vector headers' included, may use AVX2.
#if defined(__x86_64__)
#include "runtime/cpu/capability_avx2.h"
#include "lstm/cpu/pointwise_impl.h"
#include "gru/cpu/gru_pointwise_impl.h"
#include "runtime/cpu/small_gemm_impl.h"

LSTM_EXT_POINTWISE_TABLE(AVX2)
LSTM_EXT_GRU_POINTWISE_TABLE(AVX2)
LSTM_EXT_SMALL_GEMM_TABLE(AVX2)
#endif
